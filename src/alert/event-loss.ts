// event_loss: one episode per overload. Any LossReport is critical (state may now be wrong): the
// first fires the alert, later ones grow its count (re-sent at the engine's rate limit).
// Conntrack loss is repaired by a table re-dump (another follows, spaced by minResyncMs, when
// loss arrived during one). The episode resolves only once both hold: no resync is pending or
// running after the last conntrack loss (the last one ended clean), and lossQuietSeconds passed
// without any new loss. NFLOG loss cannot be repaired (packets are gone): the quiet period alone
// ends it. The resolved alert carries the episode's total.
import type { LossReport } from '../source/types.js';
import type { Clock } from './clock.js';
import type { AlertSink } from './engine.js';
import type { Thresholds } from './thresholds.js';

const KEY = '';

/** Loss of one source, summed over reports (LossReport's fields). */
export interface LossCounts {
  enobufs: number;
  kernelDrops: number;
  dropped: number;
  seqGap: number;
}

export const zeroLoss = (): LossCounts => ({ enobufs: 0, kernelDrops: 0, dropped: 0, seqGap: 0 });

export function addLoss(c: LossCounts, r: LossReport): void {
  c.enobufs += r.enobufs;
  c.kernelDrops += r.kernelDrops;
  c.dropped += r.dropped;
  c.seqGap += r.seqGap;
}

/**
 * Events lost, from summed counts. The socket's drop counter is exact; when it could not be
 * read (0) each ENOBUFS still stands for at least one event. Events the reader lost itself
 * (truncated datagrams) come on top (the kernel delivered them). A lost NFLOG packet is
 * counted twice, as a kernel drop (per datagram, which may hold several packets) and as a
 * sequence gap (per packet): the larger of the two is the count.
 */
export function lostEvents(c: LossCounts): number {
  const kernel = c.kernelDrops > 0 ? c.kernelDrops : c.enobufs;
  return Math.max(kernel, c.seqGap) + c.dropped;
}

export class EventLossRule {
  private counts = { conntrack: zeroLoss(), nflog: zeroLoss() };
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
    private readonly engine: AlertSink,
    private readonly clock: Clock,
    private readonly t: Thresholds,
  ) {}

  onLoss(r: LossReport): void {
    if (r.enobufs + r.kernelDrops + r.dropped + r.seqGap === 0) return;
    const c = this.counts[r.source];
    const before = lostEvents(c);
    addLoss(c, r);
    const lost = Math.max(0, lostEvents(c) - before); // 0: an ENOBUFS for drops already counted
    this.lastLossMs = this.clock.now();
    if (r.source === 'conntrack') {
      if (this.resyncing) this.dirty = true;
      else this.needDump = true;
    }
    const detail = this.detail();
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

  /** A dump finished: a clean resync repairs the state; a dirty one is followed by another. */
  onDumpEnd(): void {
    if (!this.resyncing) return;
    this.resyncing = false;
    if (this.dirty) {
      this.dirty = false;
      this.needDump = true;
      return;
    }
    this.maybeResolve();
  }

  tick(): void {
    this.maybeResolve();
  }

  private maybeResolve(): void {
    if (this.resyncing || this.needDump || !this.engine.isFiring('event_loss', KEY)) return;
    if (this.clock.now() - this.lastLossMs < this.t.lossQuietSeconds * 1000) return;
    const nflogLoss = lostEvents(this.counts.nflog) > 0;
    const ctLoss = lostEvents(this.counts.conntrack) > 0;
    const detail = this.detail();
    const quiet = `${this.t.lossQuietSeconds} s`;
    this.engine.resolve('event_loss', KEY, {
      detail,
      message: (total) =>
        `Event loss is over (none for ${quiet}): ${total} events were lost in this episode` +
        (ctLoss ? '; conntrack state was rebuilt from a table dump' : '') +
        (nflogLoss ? `; ${lostEvents(this.counts.nflog)} lost NFLOG packets cannot be recovered` : ''),
    });
    this.counts = { conntrack: zeroLoss(), nflog: zeroLoss() };
  }

  /** Each component per source, and the events lost they add up to. */
  private detail(): Record<string, unknown> {
    const { conntrack, nflog } = this.counts;
    return {
      conntrack: { ...conntrack, lost: lostEvents(conntrack) },
      nflog: { ...nflog, lost: lostEvents(nflog) },
      resyncs: this.resyncs,
    };
  }
}

function lossMessage(total: number, ct: LossCounts, nf: LossCounts): string {
  const parts: string[] = [];
  if (lostEvents(ct) > 0) parts.push(`conntrack: ${sources(ct)}`);
  if (lostEvents(nf) > 0) parts.push(`nflog: ${sources(nf)}${nf.seqGap ? `, ${nf.seqGap} sequence numbers skipped` : ''}`);
  return `natwatch lost ${total} events (${parts.join('; ')}): the kernel produced them faster than they were read, so occupancy is rebuilt from a table dump; give the socket a larger receive buffer or reduce the event rate`;
}

function sources(c: LossCounts): string {
  const kernel =
    c.kernelDrops > 0
      ? `${c.kernelDrops} the kernel could not queue (ENOBUFS ×${c.enobufs})`
      : `ENOBUFS ×${c.enobufs} (the kernel's drop count was unavailable: at least one event each)`;
  return `${kernel}, ${c.dropped} lost in the reader`;
}
