// The per-second stats message: table gauge, cumulative counters, rates since the previous
// message, and the top keys by utilization.
import type { CounterSnapshot } from '../source/types.js';
import type { KernelCounters, StatsMessage } from '../types.js';
import { topKeys } from './top.js';
import type { Tracker } from './tracker.js';

export const TOP_N = 10;

const round2 = (x: number) => Math.round(x * 100) / 100;

export class StatsBuilder {
  private prev = { ms: 0, news: 0, destroys: 0 };

  constructor(private readonly tracker: Tracker) {}

  build(snap: CounterSnapshot, delta: KernelCounters, nowMs: number): StatsMessage {
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
        drop: round2(delta.drop / secs),
      },
      top: topKeys(this.tracker.keys, TOP_N, Math.floor(nowMs / 1000)),
    };
    this.prev = { ms: nowMs, news: t.news, destroys: t.destroys };
    return stats;
  }
}
