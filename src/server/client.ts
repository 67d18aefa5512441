// One connected stream client: its subscription and its backpressure accounting. Events and
// stats above the high-water mark are skipped and counted (reported later as one `gap`);
// alerts are never skipped — past the hard limit the client is closed with 1013.
import type { WebSocket } from 'ws';
import { alertMatches, eventMatches, statsMatches, type Subscription } from './filter.js';
import { encodeControl, type EncodedFrame, type FrameCache } from './encode.js';
import type { EcsContext } from './ecs.js';

/** RFC 6455 close codes used here. */
export const CLOSE_GOING_AWAY = 1001;
export const CLOSE_TRY_AGAIN_LATER = 1013;

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

  constructor(
    readonly id: number,
    readonly ws: WebSocket,
    public sub: Subscription,
    private readonly limits: BackpressureLimits,
    private readonly onSlow: (c: StreamClient) => void,
  ) {}

  private send(frame: EncodedFrame): void {
    this.sent++;
    this.ws.send(frame.data, { binary: frame.binary });
  }

  sendControl(msg: object): void {
    if (this.closed) return;
    // A client that keeps sending but never reads must not grow our memory with the replies.
    if (this.ws.bufferedAmount > this.limits.hardLimit) {
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
      if (this.ws.bufferedAmount > this.limits.hardLimit) {
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

  /** Alerts replayed for `since`, already filtered by the caller. */
  deliverReplay(frames: FrameCache): void {
    if (!this.closed) this.send(frames.get(this.sub.format));
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.ws.close(code, reason);
  }
}
