// A bounded async-iterator buffer for Streamer.messages(): one per consumer.
import type { Alert, StatsMessage, WireEvent } from './types.js';

export type StreamMessage = Alert | StatsMessage | WireEvent;

/**
 * One consumer of messages(): a bounded buffer. When full, the oldest non-alert message is
 * dropped (counted in `dropped`); alerts are dropped only when nothing else is left to drop.
 */
export class MessageQueue implements AsyncIterableIterator<StreamMessage> {
  private buf: StreamMessage[] = [];
  private waiter: ((r: IteratorResult<StreamMessage>) => void) | null = null;
  private done = false;
  /** Messages shed because the consumer fell `max` behind. */
  dropped = 0;

  constructor(
    private readonly types: Set<string>,
    private readonly max: number,
    private readonly detach: () => void,
  ) {}

  wants(type: string): boolean {
    return this.types.has(type);
  }

  push(m: StreamMessage): void {
    if (this.done || !this.types.has(m.type)) return;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w({ value: m, done: false });
      return;
    }
    if (this.buf.length >= this.max) {
      const i = this.buf.findIndex((x) => x.type !== 'alert');
      this.buf.splice(i >= 0 ? i : 0, 1);
      this.dropped++;
    }
    this.buf.push(m);
  }

  end(): void {
    this.done = true;
    this.detach();
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = null;
      w({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<StreamMessage>> {
    if (this.buf.length > 0) return Promise.resolve({ value: this.buf.shift()!, done: false });
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => (this.waiter = resolve));
  }

  return(): Promise<IteratorResult<StreamMessage>> {
    this.buf = [];
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
