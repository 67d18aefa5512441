// `natwatch events` filters, applied to the batch cursors before any event object is built:
// --proto, --dst IP[:PORT] (the original destination), --event new,update,destroy, --nat
// snat|dnat. NFLOG packets have no conntrack event type or NAT state: --event and --nat
// select conntrack records only.
import { isIP } from 'node:net';
import { UsageError } from '../errors.js';
import { FilterError, parseDst } from '../server/filter.js';
import { protoName } from '../source/names.js';
import { CtKind, IPS_DST_NAT, IPS_SRC_NAT, type ConntrackView, type NflogView } from '../source/types.js';

export interface EventFilter {
  protos: Set<number> | null;
  dstIp: string | null;
  dstPort: number | null;
  kinds: Set<CtKind> | null;
  /** Status bits, any of which must be set. */
  nat: number;
}

const PROTO_NUMBERS = new Map<string, number>();
for (let p = 0; p < 256; p++) {
  const name = protoName(p);
  if (name !== String(p)) PROTO_NUMBERS.set(name, p);
}
PROTO_NUMBERS.set('ipv6-icmp', 58);

const KINDS: Record<string, CtKind[]> = {
  // Records of the initial table dump are connections that exist: they count as new.
  new: [CtKind.New, CtKind.Dump],
  update: [CtKind.Update],
  destroy: [CtKind.Destroy],
};

const list = (v: string): string[] => v.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);

export function parseEventFilter(o: { proto?: string | undefined; dst?: string | undefined; event?: string | undefined; nat?: string | undefined }): EventFilter {
  const f: EventFilter = { protos: null, dstIp: null, dstPort: null, kinds: null, nat: 0 };
  if (o.proto !== undefined) {
    f.protos = new Set(
      list(o.proto).map((p) => {
        const n = /^\d{1,3}$/.test(p) && Number(p) < 256 ? Number(p) : PROTO_NUMBERS.get(p);
        if (n === undefined) throw new UsageError(`--proto: '${p}' is not a protocol name (tcp, udp, icmp, icmpv6, sctp, ...) or number`);
        return n;
      }),
    );
    if (f.protos.size === 0) throw new UsageError('--proto: empty list');
  }
  if (o.dst !== undefined) {
    try {
      const d = parseDst(o.dst);
      if (d.ip === null || isIP(d.ip) === 0) throw new FilterError('');
      f.dstIp = d.ip;
      f.dstPort = d.port;
    } catch {
      throw new UsageError(`--dst: '${o.dst}' is not IP, IP:PORT or [IPv6]:PORT`);
    }
  }
  if (o.event !== undefined) {
    const names = list(o.event);
    if (names.length === 0) throw new UsageError('--event: empty list');
    f.kinds = new Set(
      names.flatMap((n) => {
        const k = KINDS[n];
        if (!k) throw new UsageError(`--event: '${n}' is not one of new, update, destroy`);
        return k;
      }),
    );
  }
  if (o.nat !== undefined) {
    for (const n of list(o.nat)) {
      if (n === 'snat') f.nat |= IPS_SRC_NAT;
      else if (n === 'dnat') f.nat |= IPS_DST_NAT;
      else throw new UsageError(`--nat: '${n}' is not snat or dnat`);
    }
    if (f.nat === 0) throw new UsageError('--nat: empty list');
  }
  return f;
}

export const matchesEverything = (f: EventFilter): boolean => f.protos === null && f.dstIp === null && f.kinds === null && f.nat === 0;

/** The record under the cursor. */
export function conntrackMatches(f: EventFilter, v: ConntrackView): boolean {
  if (f.kinds !== null && !f.kinds.has(v.kind)) return false;
  if (f.nat !== 0 && (v.status & f.nat) === 0) return false;
  if (f.protos !== null && !f.protos.has(v.proto)) return false;
  if (f.dstPort !== null && v.origDport !== f.dstPort) return false;
  return f.dstIp === null || v.origDst() === f.dstIp;
}

export function nflogMatches(f: EventFilter, v: NflogView): boolean {
  if (f.kinds !== null || f.nat !== 0) return false;
  if (f.protos !== null && !f.protos.has(v.proto)) return false;
  if (f.dstPort !== null && v.dport !== f.dstPort) return false;
  return f.dstIp === null || v.dst() === f.dstIp;
}
