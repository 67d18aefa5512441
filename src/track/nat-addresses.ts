// Per NAT address aggregates for /metrics: the busiest destination's utilization per
// (proto, NAT address). Unlike the top keys these series do not come and go as destinations
// overtake each other, so a Prometheus `for:` clause on them holds. One pass over the keys,
// at scrape time only, allocating nothing per key in the common case (few NAT addresses).
import type { Tracker } from './tracker.js';

export interface NatAddressEntry {
  proto: string;
  natIp: string;
  /** Highest used/capacity over the address's destinations (0..1). */
  maxUtilization: number;
  /** Destinations with at least one live flow through this address. */
  destinations: number;
  /** The namespace (set by a streamer watching several; null: natwatch's own). */
  netns?: string | null;
}

/** Up to this many distinct (proto, NAT ip) are matched by prefix; beyond, by a map lookup. */
const SCAN = 16;

export function natAddresses(tracker: Tracker): NatAddressEntry[] {
  const keys = tracker.keys;
  // Key texts are `proto|natIp|dstIp|dstPort|L`: group by the `proto|natIp|` prefix.
  const prefixes: string[] = [];
  const entries: NatAddressEntry[] = [];
  const byPrefix = new Map<string, NatAddressEntry>();
  keys.forEachKey((k) => {
    if (keys.isLocal(k)) return;
    const str = keys.identity(k);
    let e: NatAddressEntry | undefined;
    const n = Math.min(prefixes.length, SCAN);
    for (let i = 0; i < n; i++) {
      if (str.startsWith(prefixes[i]!)) {
        e = entries[i];
        break;
      }
    }
    if (!e) {
      const cut = str.indexOf('|', str.indexOf('|') + 1) + 1;
      const prefix = str.slice(0, cut);
      e = byPrefix.get(prefix);
      if (!e) {
        const [proto, natIp] = prefix.split('|') as [string, string];
        e = { proto, natIp, maxUtilization: 0, destinations: 0 };
        byPrefix.set(prefix, e);
        prefixes.push(prefix);
        entries.push(e);
      }
    }
    const used = keys.used(k);
    if (used === 0) return;
    e.destinations++;
    const cap = keys.capacityOf(k);
    const u = cap > 0 ? Math.min(used / cap, 1) : 0;
    if (u > e.maxUtilization) e.maxUtilization = u;
  });
  return entries;
}

const cache = new WeakMap<Tracker, { ms: number; list: NatAddressEntry[] }>();

/**
 * natAddresses at most once per `maxAgeMs`: the pass costs ≈ 1 µs per key on the JS thread
 * (≈ 0.1 s at 100k destinations), and an HA pair of Prometheus servers scrapes twice.
 */
export function natAddressesCached(tracker: Tracker, nowMs: number, maxAgeMs = 5_000): NatAddressEntry[] {
  const c = cache.get(tracker);
  if (c && nowMs - c.ms < maxAgeMs && nowMs >= c.ms) return c.list;
  const list = natAddresses(tracker);
  cache.set(tracker, { ms: nowMs, list });
  return list;
}
