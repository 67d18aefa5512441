// The per-second stats message: table gauge, cumulative counters, rates since the previous
// message, and the top keys by utilization; one per namespace, and their sum when several
// namespaces are watched.
import type { CounterSnapshot } from '../source/types.js';
import type { KernelCounters, NamespaceStats, StatsMessage, TopEntry } from '../types.js';
import { topKeys } from './top.js';
import type { Tracker } from './tracker.js';

export const TOP_N = 10;

const round2 = (x: number) => Math.round(x * 100) / 100;

export class StatsBuilder {
  private prev = { ms: 0, news: 0, destroys: 0 };

  constructor(
    private readonly tracker: Tracker,
    private readonly netns: string | null,
  ) {}

  /** `drops`: the kernel's drop counter delta since the previous message (summed over its polls). */
  build(snap: CounterSnapshot, drops: number, nowMs: number): StatsMessage {
    const t = this.tracker.totals;
    const p = this.prev;
    const secs = p.ms > 0 ? Math.max((nowMs - p.ms) / 1000, 0.001) : 1;
    const lim = snap.limits;
    const stats: StatsMessage = {
      type: 'stats',
      ts: new Date(nowMs).toISOString(),
      conntrack: { count: snap.count, max: lim.max, buckets: lim.buckets },
      counters: { ...snap.counters },
      rates: {
        new: p.ms > 0 ? round2((t.news - p.news) / secs) : 0,
        destroy: p.ms > 0 ? round2((t.destroys - p.destroys) / secs) : 0,
        drop: round2(drops / secs),
      },
      top: topKeys(this.tracker.keys, TOP_N, Math.floor(nowMs / 1000), this.netns),
    };
    this.prev = { ms: nowMs, news: t.news, destroys: t.destroys };
    return stats;
  }
}

/** The busiest n entries of several namespaces' top lists (each sorted already). */
export function mergeTop(lists: TopEntry[][], n = TOP_N): TopEntry[] {
  return lists
    .flat()
    .sort((a, b) => b.utilization - a.utilization)
    .slice(0, n);
}

/**
 * One stats message for several namespaces: each one's numbers under `namespaces`, their sums at
 * the top level (counters, rates, table count/max/buckets) and the busiest keys of all as `top`.
 */
export function combineStats(parts: Array<{ netns: string | null; stats: StatsMessage }>, nowMs: number): StatsMessage {
  const counters = {} as KernelCounters;
  const conntrack = { count: 0, max: 0, buckets: 0 };
  const rates = { new: 0, destroy: 0, drop: 0 };
  const namespaces: NamespaceStats[] = [];
  for (const { netns, stats: s } of parts) {
    for (const [k, v] of Object.entries(s.counters) as Array<[keyof KernelCounters, number]>) counters[k] = (counters[k] ?? 0) + v;
    conntrack.count += s.conntrack.count;
    conntrack.max += s.conntrack.max;
    conntrack.buckets += s.conntrack.buckets;
    rates.new = round2(rates.new + s.rates.new);
    rates.destroy = round2(rates.destroy + s.rates.destroy);
    rates.drop = round2(rates.drop + s.rates.drop);
    namespaces.push({ netns, conntrack: s.conntrack, counters: s.counters, rates: s.rates, top: s.top });
  }
  return {
    type: 'stats',
    ts: new Date(nowMs).toISOString(),
    conntrack,
    counters,
    rates,
    top: mergeTop(parts.map((p) => p.stats.top)),
    namespaces,
  };
}
