// The streamer asks its source for conntrack UPDATE events only while a consumer of `event`
// messages exists: retainEvents() holders, 'event' listeners and events iterators, refcounted.
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/alert/clock.js';
import { createStreamer } from '../../src/streamer.js';
import { SyntheticSource } from '../../src/source/synthetic.js';

async function make() {
  const clock = new FakeClock(Date.UTC(2026, 0, 1));
  const src = new SyntheticSource({ now: () => clock.now() });
  const calls: boolean[] = [];
  Object.assign(src, { setUpdates: (on: boolean) => calls.push(on) });
  const s = createStreamer({ source: src, clock, localAddrs: [] });
  return { s, calls };
}

describe('Streamer UPDATE events on demand', () => {
  it('starts without UPDATEs and holds them while retained, refcounted', async () => {
    const { s, calls } = await make();
    await s.start();
    expect(calls).toEqual([false]); // told before start: subscribe without the UPDATE group
    const a = s.retainEvents();
    const b = s.retainEvents();
    expect(calls).toEqual([false, true]);
    a();
    a(); // idempotent: one holder is still there
    expect(calls).toEqual([false, true]);
    b();
    expect(calls).toEqual([false, true, false]);
    await s.close();
  });

  it("an 'event' listener and an events iterator hold them too; close() releases", async () => {
    const { s, calls } = await make();
    const early = s.retainEvents(); // before start: the source starts with UPDATEs
    await s.start();
    expect(calls).toEqual([true]);
    early();
    expect(calls).toEqual([true, false]);
    const fn = () => {};
    s.on('event', fn);
    expect(calls.at(-1)).toBe(true);
    s.off('event', fn);
    expect(calls.at(-1)).toBe(false);
    const alertsOnly = s.messages(['alert']);
    expect(calls.at(-1)).toBe(false);
    const q = s.messages(['alert', 'event']);
    expect(calls.at(-1)).toBe(true);
    q.end();
    expect(calls.at(-1)).toBe(false);
    alertsOnly.end();
    s.retainEvents();
    expect(calls.at(-1)).toBe(true);
    const n = calls.length;
    await s.close();
    expect(calls.length).toBe(n); // the source is closed, not told anything more
  });
});
