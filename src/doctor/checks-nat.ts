// Checks on NAT capacity and on natwatch's own needs: port ranges vs the ephemeral range,
// SNAT addresses vs the busiest destination, and the netlink receive buffer.
import { endpoint } from '../endpoint.js';
import type { Ruleset } from '../source/ruleset.js';
import { CapacityResolver, DEFAULT_NAT_PORTS, portSpan, type Capacity } from '../track/capacity.js';
import type { Facts } from './facts.js';
import type { CheckResult } from './types.js';

/** natwatch's netlink receive buffer (set with SO_RCVBUFFORCE). */
const WANTED_RCVBUF = 64 << 20;
/** Socket-buffer cost of one conntrack event (skb truesize), for the "holds N events" estimate. */
const EVENT_TRUESIZE = 1280;

function localRange(f: Facts): [number, number] | null {
  const m = /^(\d+) (\d+)$/.exec(f.sysctl['net/ipv4/ip_local_port_range'] ?? '');
  return m ? [Number(m[1]), Number(m[2])] : null;
}

/** Rules that rewrite the source. */
const sourceNat = (r: Ruleset): Ruleset['natRules'] => r.natRules.filter((n) => n.kind === 'masquerade' || n.kind === 'snat');

export function natPortRange(f: Facts): CheckResult {
  const id = 'nat-port-range';
  if (!f.ruleset) return { id, verdict: 'info', finding: `ruleset unreadable (${f.rulesetError})`, fix: null };
  const src = sourceNat(f.ruleset);
  if (src.length === 0) return { id, verdict: 'info', finding: 'no source NAT rules', fix: null };
  const local = localRange(f);
  const ranges = src.map((r) => r.ports).filter((p): p is [number, number] => p !== null);
  const natText = ranges.length ? ranges.map((r) => `${r[0]}-${r[1]} (${portSpan(r)} ports)`).join(', ') : `not set: the kernel keeps the source port when free, else picks in ${DEFAULT_NAT_PORTS.join('-')}`;
  const localText = local ? `${local[0]}-${local[1]} (${portSpan(local)} ports)` : 'unknown';
  const overlap = local !== null && (ranges.length ? ranges : [DEFAULT_NAT_PORTS]).some((r) => r[0] <= local[1] && local[0] <= r[1]);
  const rule =
    'overlap is legal: conntrack keeps the full tuple (proto, src, sport, dst, dport) unique, not the port, so NAT may reuse a port the host uses itself ' +
    'and a clash needs the same destination ip:port too, which NAT resolves by picking another port';
  return {
    id,
    verdict: 'info',
    finding: `NAT port range ${natText}; local ephemeral range ${localText}${overlap ? `; ${rule}` : ''}. Capacity per (NAT address, destination ip:port) = range size`,
    fix: null,
  };
}

/**
 * A NAT key's capacity as doctor sees it: the same resolver serve's tracker uses, fed the same
 * Ruleset and interfaces, so the rule that produced the NAT address decides for both.
 */
export function natCapacity(f: Facts, proto: string, natIp: string, dstIp: string, dstPort: number): Capacity {
  const resolver = new CapacityResolver();
  if (f.ruleset) resolver.setRuleset(f.ruleset);
  else resolver.setUnreadable([f.rulesetError ?? 'ruleset unreadable']);
  resolver.setInterfaces(f.interfaces);
  return resolver.nat(proto, natIp, dstIp, dstPort);
}

export function snatCapacity(f: Facts): CheckResult {
  const id = 'snat-capacity';
  if (!f.ruleset) return { id, verdict: 'info', finding: `ruleset unreadable (${f.rulesetError})`, fix: null };
  if (!f.table) return { id, verdict: 'info', finding: f.tableNote ?? 'table not dumped', fix: null };
  const src = sourceNat(f.ruleset);
  const top = f.table.busiest[0];
  if (!top) return { id, verdict: src.length ? 'ok' : 'info', finding: 'no source-NATed flows in the table', fix: null };
  const cap = natCapacity(f, top.proto, top.natIp, top.dstIp, top.dstPort);
  const perAddr = cap.capacity;
  const addresses = cap.addrs;
  const u = top.flows / perAddr;
  const dst = endpoint(top.dstIp, top.dstPort);
  const source = cap.source === 'ruleset' && cap.reason === null ? '' : `; capacity source ${cap.source}${cap.reason ? ` (${cap.reason})` : ''}`;
  const finding =
    `busiest destination ${top.proto} ${dst}: ${top.flows} flows through NAT address ${top.natIp}, capacity ${perAddr} ports per address ` +
    `(${(u * 100).toFixed(0)}%) × ${addresses} address(es); each internal source is pinned to one NAT address, so one can run out while others idle${source}`;
  const fix = `widen the rule's range (e.g. 'masquerade to :1024-65535') or add SNAT addresses ('snat to A-B'), then: ${f.inNs}nft list ruleset`;
  if (u >= 1) return { id, verdict: 'fail', finding, fix };
  if (u >= 0.75) return { id, verdict: 'warn', finding, fix };
  return { id, verdict: 'ok', finding, fix: null };
}

export function receiveBuffer(f: Facts): CheckResult {
  const id = 'rcvbuf';
  const v = Number(f.sysctl['net/core/rmem_max'] ?? NaN);
  if (!Number.isFinite(v)) return { id, verdict: 'info', finding: 'net.core.rmem_max not readable', fix: null };
  const mb = (n: number): string => `${(n / (1 << 20)).toFixed(n < 1 << 20 ? 2 : 0)} MiB`;
  if (v >= WANTED_RCVBUF) return { id, verdict: 'ok', finding: `net.core.rmem_max = ${v} (${mb(v)}) ≥ the ${mb(WANTED_RCVBUF)} natwatch wants`, fix: null };
  return {
    id,
    verdict: 'info',
    finding:
      `net.core.rmem_max = ${v} (${mb(v)}, ≈ ${Math.floor(v / EVENT_TRUESIZE)} events before loss) is below the ${mb(WANTED_RCVBUF)} natwatch wants; ` +
      'natwatch sets its buffer with SO_RCVBUFFORCE (CAP_NET_ADMIN) and is not capped, but conntrack -E, ulogd and other SO_RCVBUF listeners are',
    fix: `sysctl -w net.core.rmem_max=${WANTED_RCVBUF}   # host-wide; only for other listeners`,
  };
}
