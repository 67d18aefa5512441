// One namespace's rules, evaluated once per counter snapshot: the kernel counter deltas are
// computed here once and handed to the rules that read them. The streamer owns the timing, this
// owns the order; the alerts go to the process's one engine through the namespace's scope.
import type { CounterSnapshot } from '../source/types.js';
import type { Tracker } from '../track/tracker.js';
import type { KernelCounters } from '../types.js';
import type { Clock } from './clock.js';
import { ConntrackDropsRule } from './conntrack-drops.js';
import type { AlertSink } from './engine.js';
import { EventLossRule } from './event-loss.js';
import { NflogDropRule } from './nflog-drop.js';
import { PortExhaustionRule } from './port-exhaustion.js';
import { TableFullRule } from './table-full.js';
import type { Thresholds } from './thresholds.js';

const COUNTER_FIELDS: Array<keyof KernelCounters> = ['found', 'invalid', 'insert', 'insert_failed', 'drop', 'early_drop', 'error', 'search_restart', 'clash_resolve', 'chaintoolong'];
/** Longer than the longest a NEW waits in a batch (the 100 ms window while only tracking) and its hand-over. */
const HOLD_MS = 150;

function addCounters(a: KernelCounters, b: KernelCounters): KernelCounters {
  const sum = {} as KernelCounters;
  for (const f of COUNTER_FIELDS) sum[f] = a[f] + b[f];
  return sum;
}

export class AlertRules {
  readonly port: PortExhaustionRule;
  readonly table: TableFullRule;
  readonly drops: ConntrackDropsRule;
  readonly nflog: NflogDropRule;
  readonly loss: EventLossRule;
  private prev: KernelCounters | null = null;
  /**
   * Drops no full key or table explained, held back with the deltas they came in for at least
   * HOLD_MS: the counters are read on the JavaScript thread while the events of the flows that
   * filled a key may still wait in a batch (up to 100 ms while only tracking), so the key may
   * reach capacity at a later poll. By time, not by polls: two polls can run back to back (a
   * request made while one runs, an embedder's tick()).
   */
  private held: { drops: number; delta: KernelCounters; sinceMs: number } | null = null;

  constructor(
    private readonly tracker: Tracker,
    sink: AlertSink,
    clock: Clock,
    t: Thresholds,
  ) {
    this.port = new PortExhaustionRule(tracker.keys, sink, t);
    this.table = new TableFullRule(sink, t);
    this.drops = new ConntrackDropsRule(sink, clock, t);
    this.nflog = new NflogDropRule(sink, clock, t);
    this.loss = new EventLossRule(sink, clock, t);
  }

  /** Runs every rule against a snapshot; returns the counter deltas since the previous one. */
  evaluate(snap: CounterSnapshot, nowMs: number): KernelCounters {
    const nowSec = Math.floor(nowMs / 1000);
    const delta = {} as KernelCounters;
    for (const f of COUNTER_FIELDS) {
      // A counter going backwards (namespace re-created) counts as a fresh start, not a negative.
      delta[f] = this.prev ? Math.max(0, snap.counters[f] - this.prev[f]) : 0;
    }
    this.prev = snap.counters;
    const lim = snap.limits;
    this.tracker.capacity.setLocalLimits(lim.localPortRange, lim.reservedPorts);
    // insert_failed and drop both count one failed insert: take the larger, not the sum.
    const drops = Math.max(delta.insert_failed, delta.drop);
    const tableFull = this.table.evaluate({ count: snap.count, max: lim.max, dDrop: delta.drop, dEarlyDrop: delta.early_drop });
    // With the table full, drops are the table's; otherwise they go to keys at capacity.
    const held = this.held;
    this.held = null;
    const port = this.port.evaluate({ nowSec, drops: tableFull ? 0 : drops + (held?.drops ?? 0) });
    if (tableFull || port.atCapacity > 0) this.drops.evaluate(drops, true, delta);
    else if (held && nowMs - held.sinceMs < HOLD_MS) {
      // Too young to call unexplained: hold this poll's drops with them.
      this.held = { drops: held.drops + drops, delta: addCounters(held.delta, delta), sinceMs: held.sinceMs };
      this.drops.evaluate(0, false, delta);
    } else {
      // What was held and is still unexplained is conntrack_drops now; this poll's drops wait.
      if (drops > 0) this.held = { drops, delta, sinceMs: nowMs };
      this.drops.evaluate(held?.drops ?? 0, false, held?.delta ?? delta);
    }
    this.nflog.tick();
    this.loss.tick();
    return delta;
  }
}
