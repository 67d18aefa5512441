// The doctor's view of the conntrack table, from natwatch's own netlink dump (the same one
// serve starts from; no `conntrack -L`, no size cap): entries by TCP state, and source-NATed
// flows per (proto, NAT address, destination ip, destination port), the unit whose port range
// runs out.
import { NatwatchError } from '../errors.js';
import { IPPROTO_TCP, protoName, tcpStateName } from '../source/names.js';
import { CtKind, type ConntrackView } from '../source/types.js';

export interface DestinationLoad {
  proto: string;
  natIp: string;
  dstIp: string;
  dstPort: number;
  flows: number;
}

export interface CtSummary {
  entries: number;
  byState: Record<string, number>;
  /** Entries whose reply destination differs from the original source (source NAT). */
  snat: number;
  /** Busiest (proto, NAT ip, dst, dport) first; at most 10. */
  busiest: DestinationLoad[];
}

/** Accumulates dump records into a CtSummary. */
export class TableSummary {
  private entries = 0;
  private snat = 0;
  private readonly byState: Record<string, number> = {};
  private readonly load = new Map<string, DestinationLoad>();

  add(proto: number, tcpState: number, origSrc: string, origDst: string, origDport: number, replyDst: string): void {
    this.entries++;
    if (proto === IPPROTO_TCP) {
      const s = tcpStateName(tcpState);
      if (s) this.byState[s] = (this.byState[s] ?? 0) + 1;
    }
    if (replyDst === origSrc) return;
    this.snat++;
    const p = protoName(proto);
    const k = `${p}|${replyDst}|${origDst}|${origDport}`;
    const e = this.load.get(k);
    if (e) e.flows++;
    else this.load.set(k, { proto: p, natIp: replyDst, dstIp: origDst, dstPort: origDport, flows: 1 });
  }

  addView(v: ConntrackView): void {
    for (let i = 0; i < v.count; i++) {
      v.seek(i);
      if (v.kind === CtKind.Dump) this.add(v.proto, v.tcpState, v.origSrc(), v.origDst(), v.origDport, v.replyDst());
    }
  }

  summary(): CtSummary {
    const busiest = [...this.load.values()].sort((a, b) => b.flows - a.flows).slice(0, 10);
    return { entries: this.entries, byState: { ...this.byState }, snat: this.snat, busiest };
  }
}

const DUMP_TIMEOUT_MS = 60_000;

/** Dumps the namespace's table once through the addon and summarizes it. */
export async function dumpTable(netns: string | null): Promise<CtSummary> {
  const spec = '../source/netlink-source.js'; // the addon loads only when a dump is asked for
  const { createNetlinkSource } = (await import(spec)) as typeof import('../source/netlink-source.js');
  const src = createNetlinkSource({ netns, dump: true, rcvbufBytes: 8 << 20 });
  const sum = new TableSummary();
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new NatwatchError('ERUNTIME', `conntrack dump did not end within ${DUMP_TIMEOUT_MS / 1000} s`)), DUMP_TIMEOUT_MS);
      const done = (err?: Error) => {
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
      src
        .start({
          conntrack: (v) => sum.addView(v),
          nflog: () => {},
          loss: () => {},
          dumpBegin: () => {},
          dumpEnd: () => done(),
          error: (err) => done(err),
        })
        .catch(done);
    });
  } finally {
    await src.close();
  }
  return sum.summary();
}
