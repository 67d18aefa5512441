import { afterEach, describe, expect, it, vi } from 'vitest';
import { FakeClock } from '../../src/alert/clock.js';
import { AlertEngine } from '../../src/alert/engine.js';
import { createStreamer, Streamer } from '../../src/streamer.js';
import { netnsPath } from '../../src/netns.js';
import { SyntheticSource, snatFlow } from '../../src/source/synthetic.js';
import { CtKind } from '../../src/source/types.js';
import type { Alert, StatsMessage, WireEvent } from '../../src/types.js';

let open: Streamer[] = [];
afterEach(async () => {
  for (const s of open) await s.close();
  open = [];
});

async function make(opts: Parameters<typeof createStreamer>[0] = {}) {
  const clock = new FakeClock(Date.UTC(2026, 0, 1));
  const src = new SyntheticSource({ now: () => clock.now() });
  const s = createStreamer({ source: src, clock, localAddrs: [], ...opts });
  open.push(s);
  await s.start();
  const step = async (ms = 1000) => {
    clock.advance(ms);
    await new Promise((r) => setImmediate(r));
  };
  const flows = (n: number, dport = 80, from = 1) =>
    Array.from({ length: n }, (_, i) => snatFlow(CtKind.New, from + i, { src: '192.0.2.5', sport: 1000 + i, dst: '198.51.100.8', dport, natIp: '198.51.100.1', natPort: 50000 + i }));
  return { clock, src, s, step, flows };
}

describe('Streamer', () => {
  it('reconfigure() applies new NAT ports and thresholds live (SIGHUP)', async () => {
    const { s, src, step, flows } = await make({ natPorts: [50000, 50019] });
    const alerts: Alert[] = [];
    s.on('alert', (a) => alerts.push(a));
    src.conntrack(flows(10));
    await step();
    expect(s.top()[0]).toMatchObject({ used: 10, capacity: 20 });
    expect(alerts).toHaveLength(0);
    // The range shrinks to 12 ports: 10/12 crosses the 0.80 warning line.
    s.reconfigure({ natPorts: [50000, 50011] });
    await step();
    expect(s.top()[0]).toMatchObject({ used: 10, capacity: 12 });
    expect(alerts.at(-1)).toMatchObject({ kind: 'nat_port_exhaustion', severity: 'warning', state: 'firing', capacity: 12 });
    // Thresholds change in place: 9 flows to another destination warn once the line drops to 0.4.
    src.conntrack(flows(9, 443, 100));
    await step();
    expect(alerts.filter((a) => (a.key as { dstPort?: number }).dstPort === 443)).toHaveLength(0);
    s.reconfigure({ natPorts: [50000, 50019], thresholds: { portWarning: 0.4, portResolve: 0.3 } });
    await step();
    expect(alerts.filter((a) => (a.key as { dstPort?: number }).dstPort === 443).at(-1)).toMatchObject({ severity: 'warning', used: 9, capacity: 20 });
  });

  it('resolves a namespace name to /var/run/netns/NAME and keeps paths', () => {
    expect(netnsPath('lab1')).toBe('/var/run/netns/lab1');
    expect(netnsPath('/proc/1/ns/net')).toBe('/proc/1/ns/net');
    expect(netnsPath(undefined)).toBeNull();
  });

  it('reads the counters once per poll, stats riding on every fifth one (no second read when they meet)', async () => {
    const { s, src, step } = await make();
    const stats: StatsMessage[] = [];
    s.on('stats', (m) => stats.push(m));
    const read = vi.spyOn(src, 'readCounters');
    for (let i = 0; i < 10; i++) await step(200);
    expect(read).toHaveBeenCalledTimes(10);
    expect(stats).toHaveLength(2);
  });

  it('publishes stats every interval with counters, rates and the top keys by utilization', async () => {
    const { s, src, step, flows } = await make({ natPorts: [50000, 50019], statsIntervalMs: 1000 });
    const stats: StatsMessage[] = [];
    s.on('stats', (m) => stats.push(m));
    src.snapshot.count = 42;
    src.snapshot.limits.max = 1000;
    src.conntrack(flows(12, 80, 1));
    src.conntrack(flows(3, 443, 100));
    for (let d = 0; d < 12; d++) {
      src.conntrack(flows(1, 1000 + d, 200 + d));
    }
    await step();
    src.snapshot.counters.drop += 4;
    await step();
    expect(stats).toHaveLength(2);
    const m = stats[1]!;
    expect(m).toMatchObject({ type: 'stats', conntrack: { count: 42, max: 1000, buckets: 65536 }, counters: { drop: 4 }, rates: { new: 0, destroy: 0, drop: 4 } });
    expect(stats[0]!.rates.new).toBe(27);
    expect(m.top).toHaveLength(10);
    expect(m.top[0]).toEqual({ netns: null, key: { proto: 'tcp', natIp: '198.51.100.1', dstIp: '198.51.100.8', dstPort: 80 }, used: 12, capacity: 20, capacitySource: 'flag', capacityReason: null, utilization: 0.6, newPerSec: 0 });
    expect(stats[0]!.top[0]!.newPerSec).toBe(12); // the second they were opened in
    expect(m.top[1]).toMatchObject({ key: { dstPort: 443 }, used: 3, utilization: 0.15 });
    for (let i = 1; i < m.top.length; i++) expect(m.top[i]!.utilization).toBeLessThanOrEqual(m.top[i - 1]!.utilization);
    expect(s.lastStats()).toBe(m);
    expect(s.top()).toEqual(m.top);
  });

  it('decodes events only when someone listens', async () => {
    const { s, src, flows } = await make();
    const batch = flows(3);
    const spy = vi.fn();
    src.conntrack(batch);
    const ev: WireEvent[] = [];
    s.on('event', (e) => ev.push(e));
    src.conntrack([{ ...batch[0]!, kind: CtKind.Destroy }]);
    src.conntrack([{ ...batch[1]!, kind: CtKind.Dump }]); // dump records are state, not events
    src.nflog([{ group: 5, prefix: 'x ', src: '192.0.2.5', dst: '198.51.100.8', dport: 22 }]);
    expect(ev.map((e) => (e.source === 'conntrack' ? e.event : e.source))).toEqual(['destroy', 'nflog']);
    expect(ev[0]).toMatchObject({ type: 'event', source: 'conntrack', id: 1, proto: 'tcp', nat: 'snat', family: 'ipv4' });
    spy();
    expect(s.totals()).toEqual({ eventsReceived: { conntrack: 4, nflog: 1 }, eventsLost: { conntrack: 0, nflog: 0 }, nflogPackets: [{ group: 5, prefix: 'x', packets: 1, netns: null }] });
  });

  it('the async iterator yields the asked-for types and stops on close', async () => {
    const { s, src, step, flows } = await make({ natPorts: [50000, 50009] });
    const it = s.messages(['alert', 'event']);
    src.conntrack(flows(10));
    await step();
    const got: string[] = [];
    for (let i = 0; i < 11; i++) got.push((await it.next()).value!.type);
    expect(got).toEqual([...Array(10).fill('event'), 'alert']);
    const pending = it.next();
    await s.close();
    expect((await pending).done).toBe(true);
  });

  it('the iterator buffer is bounded and sheds non-alerts first', async () => {
    const { s, src, step, flows } = await make({ natPorts: [50000, 50009] });
    const it = s.messages(['alert', 'event'], 5);
    src.conntrack(flows(10));
    await step();
    const got: Array<Alert | WireEvent> = [];
    for (let i = 0; i < 5; i++) got.push((await it.next()).value as Alert | WireEvent);
    expect(got.map((m) => m.type)).toEqual(['event', 'event', 'event', 'event', 'alert']);
    expect(it.dropped).toBe(6); // 10 events and 1 alert into 5 places
    await it.return();
  });

  it('issues strictly increasing seq and replays from the bounded ring', async () => {
    const clock = new FakeClock();
    const sent: Alert[] = [];
    const e = new AlertEngine(clock, (a) => sent.push(a), { resendMs: 5000 }, 3);
    for (let i = 0; i < 5; i++) {
      e.observe('nflog_drop', String(i), {}, 'warning', { used: null, capacity: null, dropsDelta: 1, message: () => 'm' });
    }
    expect(sent.map((a) => a.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(e.seq).toBe(5);
    expect(e.alertsSince(0).map((a) => a.seq)).toEqual([3, 4, 5]); // ring of 3
    expect(e.alertsSince(4).map((a) => a.seq)).toEqual([5]);
    expect(e.firing()).toHaveLength(5);
  });

  it('reconfigure() reaches the engine too: a shorter resendMs re-sends growing drops sooner', async () => {
    const { s, clock } = await make();
    const sent: Alert[] = [];
    s.on('alert', (a) => sent.push(a));
    const engine = (s as unknown as { engine: AlertEngine }).engine;
    const grow = () => engine.observe('nflog_drop', 'k', {}, 'warning', { used: null, capacity: null, dropsDelta: 1, message: () => 'm' });
    grow();
    clock.t += 2000;
    grow();
    expect(sent).toHaveLength(1); // default resendMs 5000: too soon
    s.reconfigure({ thresholds: { resendMs: 1000 } });
    grow();
    expect(sent.map((a) => a.drops)).toEqual([1, 3]);
  });

  it('close() releases the source and every timer', async () => {
    const { s, src, clock } = await make();
    expect(clock.pending).toBeGreaterThan(0);
    await s.close();
    expect(src.closed).toBe(true);
    expect(clock.pending).toBe(0);
    await s.close();
  });

  it('a handler exception becomes an error event, never a throw into the source', async () => {
    const { s, src } = await make();
    const errs: Error[] = [];
    s.on('error', (e) => errs.push(e));
    s.on('event', () => {
      throw new Error('listener bug');
    });
    expect(() => src.conntrack([snatFlow(CtKind.New, 1, { src: '192.0.2.5', sport: 1, dst: '198.51.100.8', dport: 80, natIp: '198.51.100.1', natPort: 2 })])).not.toThrow();
    expect(errs[0]!.message).toBe('listener bug');
    s.removeAllListeners('error');
    expect(() => src.error(new Error('no listener'))).not.toThrow();
  });

  it('an exception during the per-second evaluation becomes an error event, not a rejected timer', async () => {
    const { s, src, step, flows } = await make();
    const errs: Error[] = [];
    s.on('error', (e) => errs.push(e));
    let stats = 0;
    s.on('stats', () => {
      stats++;
      throw new Error('stats listener bug');
    });
    src.conntrack(flows(1));
    await expect(s.tick()).resolves.toBeUndefined();
    await step();
    expect(stats).toBe(2);
    expect(errs.map((e) => e.message)).toEqual(['stats listener bug']);
  });

  it('start() on a namespace that does not exist is a one-line ENETNS error', async () => {
    const s = createStreamer({ netns: 'nwb-no-such-ns', source: new SyntheticSource() });
    await expect(s.start()).rejects.toMatchObject({ code: 'ENETNS', message: "network namespace 'nwb-no-such-ns' not found (/var/run/netns/nwb-no-such-ns)" });
  });

  it('a failure repeating every tick is reported once a minute', async () => {
    const { s, src, step } = await make();
    const errs: Error[] = [];
    s.on('error', (e) => errs.push(e));
    src.readCounters = async () => {
      throw new Error('counters unreadable');
    };
    for (let i = 0; i < 60; i++) await step(); // first report at 1 s, the last of these at 60 s
    expect(errs.map((e) => e.message)).toEqual(['counters unreadable']);
    await step();
    expect(errs).toHaveLength(2);
  });

  it('rejects bad thresholds with a one-line usage error', () => {
    expect(() => createStreamer({ thresholds: { portWarning: 0.5, portResolve: 0.9 } })).toThrow(/portResolve < portWarning/);
  });
});
