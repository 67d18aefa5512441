// The readiness /healthz reports, from the real Streamer over an injected source.
import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/alert/clock.js';
import { createStreamer, type Streamer } from '../../src/streamer.js';
import { SyntheticSource } from '../../src/source/synthetic.js';
import { startServer, type StandaloneServer } from '../../src/server/index.js';

let s: Streamer | null = null;
let srv: StandaloneServer | null = null;
afterEach(async () => {
  await srv?.close();
  await s?.close();
  s = srv = null;
});

describe('readiness', () => {
  it('starting until the first dump ended and counters were read; degraded while counters fail; ok again', async () => {
    process.env.NATWATCH_LOG_LEVEL ??= 'silent';
    const clock = new FakeClock(Date.UTC(2026, 0, 1));
    const src = new SyntheticSource({ now: () => clock.now() });
    s = createStreamer({ source: src, clock, localAddrs: [] });
    s.on('error', () => undefined);
    srv = await startServer(s, { port: 0 });
    const health = async () => {
      const r = await fetch(`http://127.0.0.1:${srv!.address.port}/healthz`);
      return [r.status, ((await r.json()) as { status: string }).status];
    };
    expect(s.readiness()).toBe('starting');
    expect(await health()).toEqual([503, 'starting']);
    await s.start(); // subscribed, counters read once; the table dump has not ended
    expect(await health()).toEqual([503, 'starting']);
    src.dumpBegin();
    expect(s.readiness()).toBe('starting');
    src.dumpEnd();
    expect(await health()).toEqual([200, 'ok']);
    // The counters cannot be read (the source failed): degraded until a read succeeds again.
    const read = src.readCounters.bind(src);
    src.readCounters = () => Promise.reject(new Error('netlink socket closed'));
    clock.advance(1000);
    await new Promise((r) => setImmediate(r));
    expect(await health()).toEqual([503, 'degraded']);
    src.readCounters = read;
    clock.advance(1000);
    await new Promise((r) => setImmediate(r));
    expect(await health()).toEqual([200, 'ok']);
  });
});
