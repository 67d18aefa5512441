// conntrack_drops: the kernel fails inserts or drops packets while no key is at capacity and
// the table has room (insert clashes, hash chain limits, ...). A warning carrying the counter
// deltas; resolved after dropsQuietMs without such drops.
import type { KernelCounters } from '../types.js';
import type { Clock } from './clock.js';
import type { AlertSink } from './engine.js';
import type { Thresholds } from './thresholds.js';

const KEY = '';
const DETAIL_FIELDS = ['insert_failed', 'drop', 'early_drop', 'invalid', 'error', 'clash_resolve', 'chaintoolong'] as const;

export class ConntrackDropsRule {
  private lastDropMs = 0;

  constructor(
    private readonly engine: AlertSink,
    private readonly clock: Clock,
    private readonly t: Thresholds,
  ) {}

  /** `drops`: max(Δinsert_failed, Δdrop) not explained by a full key or a full table. */
  evaluate(drops: number, explained: boolean, delta: KernelCounters): void {
    const now = this.clock.now();
    const firing = this.engine.isFiring('conntrack_drops', KEY);
    if (drops > 0 && !explained) {
      this.lastDropMs = now;
      const detail: Record<string, number> = {};
      for (const f of DETAIL_FIELDS) detail[f] = delta[f];
      this.engine.observe('conntrack_drops', KEY, {}, 'warning', {
        used: null,
        capacity: null,
        dropsDelta: drops,
        detail,
        message: (total) => dropsMessage(total, detail),
      });
    } else if (firing && now - this.lastDropMs >= this.t.dropsQuietMs) {
      this.engine.resolve('conntrack_drops', KEY);
    }
  }
}

function dropsMessage(total: number, d: Record<string, number>): string {
  return `Conntrack dropped ${total} packet${total === 1 ? '' : 's'} (latest counter poll: insert_failed +${d.insert_failed}, drop +${d.drop}, clash_resolve +${d.clash_resolve}, chaintoolong +${d.chaintoolong}) while no NAT destination is at capacity and the table has room; check for tuple clashes (parallel UDP/DNS from one socket), long hash chains (raise nf_conntrack_buckets) or rules dropping invalid packets`;
}
