// One connected stream client: its subscription and its backpressure accounting. Events and
// stats above the high-water mark are skipped and counted (reported later as one `gap`);
// alerts are never skipped — past the hard limit the client is closed with 1013.
import type { WebSocket } from 'ws';
import { alertMatches, eventMatches, statsMatches, type Subscription } from './filter.js';
import { encodeControl, type EncodedFrame, type FrameCache } from './encode.js';
import type { EcsContext } from './ecs.js';

/** RFC 6455 close codes used here. */
export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_POLICY_VIOLATION = 1008;
export const CLOSE_TRY_AGAIN_LATER = 1013;

/** `since` replays a client may ask for in a burst, and how often one more is allowed. */
export const REPLAY_BURST = 2;
export const REPLAY_REFILL_MS = 5000;

export interface BackpressureLimits {
  /** bufferedAmount above which events/stats are skipped. */
  highWaterMark: number;
  /** bufferedAmount above which an alert cannot be queued: the client is closed (1013). */
  hardLimit: number;
}

export class StreamClient {
  /** Messages skipped since the last gap report. */
  pendingGap = 0;
  /** Total skipped over the connection's life (for /metrics). */
  droppedTotal = 0;
  sent = 0;
  /** Set by the hub: how control messages become ECS documents for an `ecs` client. */
  ecs: EcsContext | undefined;
  alive = true;
  closed = false;
  /** Replay tokens left (REPLAY_BURST at most, one back every REPLAY_REFILL_MS). */
  private replayTokens = REPLAY_BURST;
  private replayRefilledMs = Date.now();

  constructor(
    readonly id: number,
    readonly ws: WebSocket,
    public sub: Subscription,
    private readonly limits: BackpressureLimits,
    private readonly onSlow: (c: StreamClient) => void,
    /** Digest of the token it connected with (a token change closes it unless it matches). */
    readonly auth: Buffer | null = null,
    readonly remote = '',
  ) {}

  /** Takes a replay token; returns the ms to wait instead when none is left. */
  takeReplay(now = Date.now()): number {
    const earned = Math.floor((now - this.replayRefilledMs) / REPLAY_REFILL_MS);
    if (earned > 0) {
      this.replayTokens = Math.min(REPLAY_BURST, this.replayTokens + earned);
      this.replayRefilledMs = this.replayTokens === REPLAY_BURST ? now : this.replayRefilledMs + earned * REPLAY_REFILL_MS;
    }
    if (this.replayTokens === 0) return REPLAY_REFILL_MS - (now - this.replayRefilledMs);
    this.replayTokens--;
    return 0;
  }

  /** Over the hard limit: nothing more may be queued for it. */
  get overHardLimit(): boolean {
    return this.ws.bufferedAmount > this.limits.hardLimit;
  }

  private send(frame: EncodedFrame): void {
    this.sent++;
    this.ws.send(frame.data, { binary: frame.binary });
  }

  sendControl(msg: object): void {
    if (this.closed) return;
    // A client that keeps sending but never reads must not grow our memory with the replies.
    if (this.overHardLimit) {
      this.onSlow(this);
      return;
    }
    this.send(encodeControl(msg, this.sub.format, this.ecs));
  }

  /** Report skipped messages once the buffer has drained below the high-water mark. */
  flushGap(): void {
    if (this.closed || this.pendingGap === 0 || this.ws.bufferedAmount >= this.limits.highWaterMark) return;
    const dropped = this.pendingGap;
    this.pendingGap = 0;
    if (this.sub.filter.types.has('gap')) this.sendControl({ type: 'gap', dropped, reason: 'client too slow: send buffer over high-water mark' });
  }

  deliver(frames: FrameCache): void {
    if (this.closed) return;
    const b = frames.b;
    const f = this.sub.filter;
    if (b.type === 'alert') {
      if (!alertMatches(f, b.msg)) return;
      if (this.overHardLimit) {
        this.onSlow(this);
        return;
      }
      this.flushGap();
      this.send(frames.get(this.sub.format));
      return;
    }
    if (b.type === 'stats' ? !statsMatches(f) : !eventMatches(f, b.msg)) {
      this.flushGap();
      return;
    }
    if (this.ws.bufferedAmount >= this.limits.highWaterMark) {
      this.pendingGap++;
      this.droppedTotal++;
      return;
    }
    this.flushGap();
    this.send(frames.get(this.sub.format));
  }

  /** Alerts replayed for `since`, already filtered by the caller; false once over the hard limit. */
  deliverReplay(frames: FrameCache): boolean {
    if (this.closed) return false;
    if (this.overHardLimit) {
      this.onSlow(this);
      return false;
    }
    this.send(frames.get(this.sub.format));
    return true;
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.ws.close(code, reason);
  }

  /**
   * Over the hard limit: a 1013 close frame is attempted, and the socket destroyed at once so
   * the megabytes it never read stop holding memory (it usually sees the connection drop).
   */
  terminate(code: number, reason: string): void {
    this.close(code, reason);
    this.ws.terminate();
  }
}
