// Time as the alert engine and the streamer see it: injectable, so tests drive hysteresis,
// quiet periods and re-send limits without waiting.

export interface Clock {
  now(): number;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setInterval: (fn, ms) => {
    const t = setInterval(fn, ms);
    t.unref?.();
    return t;
  },
  clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
};

/** A clock that moves only when told; due interval callbacks run inside advance(). */
export class FakeClock implements Clock {
  private timers = new Map<number, { fn: () => void; ms: number; due: number }>();
  private nextId = 1;
  constructor(public t = Date.UTC(2026, 0, 1)) {}

  now(): number {
    return this.t;
  }

  setInterval(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { fn, ms, due: this.t + ms });
    return id;
  }

  clearInterval(h: unknown): void {
    this.timers.delete(h as number);
  }

  get pending(): number {
    return this.timers.size;
  }

  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: { fn: () => void; ms: number; due: number } | undefined;
      for (const tm of this.timers.values()) if (tm.due <= end && (!next || tm.due < next.due)) next = tm;
      if (!next) break;
      this.t = next.due;
      next.due += next.ms;
      next.fn();
    }
    this.t = end;
  }
}
