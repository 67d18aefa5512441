// event_loss: any LossReport is critical (state may now be wrong). Conntrack loss is repaired
// by a table re-dump: the alert resolves at the dumpEnd of a resync during which no further
// loss arrived (otherwise another resync follows, spaced by minResyncMs). NFLOG loss cannot be
// repaired (packets are gone): it resolves after lossQuietMs without loss.
import type { LossReport } from '../source/types.js';
import type { Clock } from './clock.js';
import type { AlertEngine } from './engine.js';
import type { Thresholds } from './thresholds.js';

const KEY = '';

interface Counts {
  enobufs: number;
  dropped: number;
  seqGap: number;
}

const zero = (): Counts => ({ enobufs: 0, dropped: 0, seqGap: 0 });

export class EventLossRule {
  private counts = { conntrack: zero(), nflog: zero() };
  private lastLossMs = 0;
  /** Conntrack state is suspect and needs a dump. */
  private needDump = false;
  /** A resync was requested and its dumpEnd has not arrived. */
  private resyncing = false;
  /** Loss arrived while resyncing: that dump may be incomplete. */
  private dirty = false;
  private lastResyncMs = -Infinity;
  resyncs = 0;

  constructor(
    private readonly engine: AlertEngine,
    private readonly clock: Clock,
    private readonly t: Thresholds,
  ) {}

  onLoss(r: LossReport): void {
    const lost = r.enobufs + r.dropped + r.seqGap;
    if (lost === 0) return;
    const c = this.counts[r.source];
    c.enobufs += r.enobufs;
    c.dropped += r.dropped;
    c.seqGap += r.seqGap;
    this.lastLossMs = this.clock.now();
    if (r.source === 'conntrack') {
      if (this.resyncing) this.dirty = true;
      else this.needDump = true;
    }
    const detail = { conntrack: { ...this.counts.conntrack }, nflog: { ...this.counts.nflog }, resyncs: this.resyncs };
    this.engine.observe('event_loss', KEY, {}, 'critical', {
      used: null,
      capacity: null,
      dropsDelta: lost,
      detail,
      message: (total) => lossMessage(total, this.counts.conntrack, this.counts.nflog),
    });
  }

  /** Whether to call source.resync() now; marks it started when true. */
  wantResync(): boolean {
    if (this.resyncing && this.clock.now() - this.lastResyncMs >= this.t.resyncTimeoutMs) {
      // The dump never ended (it failed): state is still suspect, dump again.
      this.resyncing = false;
      this.needDump = true;
    }
    if (!this.needDump || this.resyncing) return false;
    if (this.clock.now() - this.lastResyncMs < this.t.minResyncMs) return false;
    this.needDump = false;
    this.resyncing = true;
    this.dirty = false;
    this.lastResyncMs = this.clock.now();
    this.resyncs++;
    return true;
  }

  /** A dump finished. Resolves if it was our clean resync and no NFLOG loss is recent. */
  onDumpEnd(): void {
    if (!this.resyncing) return;
    this.resyncing = false;
    if (this.dirty) {
      this.dirty = false;
      this.needDump = true;
      return;
    }
    this.maybeResolve(true);
  }

  tick(): void {
    if (!this.resyncing && !this.needDump) this.maybeResolve(false);
  }

  private maybeResolve(afterDump: boolean): void {
    if (!this.engine.isFiring('event_loss', KEY)) return;
    const nflogLoss = this.counts.nflog.enobufs + this.counts.nflog.dropped + this.counts.nflog.seqGap > 0;
    const quiet = this.clock.now() - this.lastLossMs >= this.t.lossQuietMs;
    // Conntrack-only loss ends with the dump; NFLOG loss needs the quiet period.
    if (nflogLoss ? !quiet : !afterDump && !quiet) return;
    const detail = { conntrack: { ...this.counts.conntrack }, nflog: { ...this.counts.nflog }, resyncs: this.resyncs };
    this.engine.resolve('event_loss', KEY, {
      detail,
      message: (total) => `Event loss is over: ${total} events were lost in all; conntrack state was rebuilt from a table dump${nflogLoss ? ' (lost NFLOG packets cannot be recovered)' : ''}`,
    });
    this.counts = { conntrack: zero(), nflog: zero() };
  }
}

export function lossMessage(total: number, ct: Counts, nf: Counts): string {
  const parts: string[] = [];
  if (ct.enobufs + ct.dropped > 0) parts.push(`conntrack: ENOBUFS ×${ct.enobufs}, ${ct.dropped} dropped in the queue`);
  if (nf.enobufs + nf.dropped + nf.seqGap > 0) parts.push(`nflog: ENOBUFS ×${nf.enobufs}, ${nf.dropped} dropped in the queue, ${nf.seqGap} sequence gaps`);
  return `natwatch lost events (${total} lost: ${parts.join('; ')}): the kernel produced them faster than they were read, so occupancy is rebuilt from a table dump; give the socket a larger receive buffer or reduce the event rate`;
}
