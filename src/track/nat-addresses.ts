// Per NAT address aggregates for /metrics: the busiest destination's utilization per
// (proto, NAT address). Unlike the top keys these series do not come and go as destinations
// overtake each other, so a Prometheus `for:` clause on them holds. One pass over the keys,
// at scrape time only.
import type { Tracker } from './tracker.js';

export interface NatAddressEntry {
  proto: string;
  natIp: string;
  /** Highest used/capacity over the address's destinations (0..1). */
  maxUtilization: number;
  /** Destinations with at least one live flow through this address. */
  destinations: number;
}

export function natAddresses(tracker: Tracker): NatAddressEntry[] {
  const { occ } = tracker;
  const by = new Map<string, NatAddressEntry>();
  for (let k = 0; k < occ.high; k++) {
    if (!occ.exists(k) || occ.local[k]) continue;
    const [proto, natIp] = occ.keyString(k).split('|', 2) as [string, string];
    const id = `${proto}|${natIp}`;
    let e = by.get(id);
    if (!e) by.set(id, (e = { proto, natIp, maxUtilization: 0, destinations: 0 }));
    const used = occ.used[k]!;
    if (used === 0) continue;
    e.destinations++;
    const cap = tracker.capacityOf(k);
    const u = cap > 0 ? Math.min(used / cap, 1) : 0;
    if (u > e.maxUtilization) e.maxUtilization = u;
  }
  return [...by.values()];
}
