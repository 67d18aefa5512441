// Several namespaces in one Streamer: `all` over an injected /var/run/netns listing (namespace
// files are links to the test's own namespace, told apart by the listing's inodes), synthetic
// sources per namespace and a fake clock.
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/alert/clock.js';
import type { NetnsEntry } from '../../src/netns.js';
import { SyntheticSource, snatFlow } from '../../src/source/synthetic.js';
import { CtKind } from '../../src/source/types.js';
import { createStreamer, type Streamer, type StreamerOptions } from '../../src/streamer.js';
import type { Alert, PortKey, StatsMessage, WireEvent } from '../../src/types.js';

let dir: string;
let open: Streamer[] = [];
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'nwm-ns-'));
});
afterEach(async () => {
  for (const s of open) await s.close();
  open = [];
  rmSync(dir, { recursive: true, force: true });
});

const KEY = { proto: 'tcp', natIp: '198.51.100.1', dstIp: '198.51.100.8', dstPort: 80 };

async function make(names: string[], opts: StreamerOptions = {}) {
  const clock = new FakeClock(Date.UTC(2026, 0, 1));
  const listed: NetnsEntry[] = [];
  const add = (name: string, ino: number) => {
    symlinkSync('/proc/self/ns/net', join(dir, name));
    listed.push({ name, path: join(dir, name), ino });
  };
  names.forEach((n, i) => add(n, 900_000_001 + i));
  const sources = new Map<string | null, SyntheticSource>();
  const s = createStreamer({
    netns: 'all',
    netnsList: () => [...listed],
    sourceFor: ({ name }) => {
      const src = new SyntheticSource({ now: () => clock.now() });
      sources.set(name, src);
      return src;
    },
    clock,
    localAddrs: [],
    natPorts: [50000, 50009],
    ...opts,
  });
  open.push(s);
  const alerts: Alert[] = [];
  const stats: StatsMessage[] = [];
  s.on('alert', (a) => alerts.push(a));
  s.on('stats', (m) => stats.push(m));
  await s.start();
  const step = async (ms = 1000) => {
    clock.advance(ms);
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  };
  let nextId = 1;
  const flows = (ns: string | null, n: number) => {
    const recs = Array.from({ length: n }, (_, i) => snatFlow(CtKind.New, nextId++, { src: '192.0.2.5', sport: 1000 + i, dst: KEY.dstIp, dport: KEY.dstPort, natIp: KEY.natIp, natPort: 50000 + i }));
    sources.get(ns)!.conntrack(recs);
    return recs;
  };
  const remove = (name: string) => listed.splice(listed.findIndex((e) => e.name === name), 1);
  return { s, clock, sources, alerts, stats, step, flows, add, remove };
}

describe('Streamer over several namespaces', () => {
  it('watches its own namespace and every listed one; one seq, alerts and top entries say which namespace', async () => {
    const h = await make(['nwm-a', 'nwm-b']);
    expect(h.s.namespaces()).toEqual([null, 'nwm-a', 'nwm-b']);
    expect(h.s.netns).toBe('all');
    // The same NAT key exhausted in a and at 80% in b: two alerts, told apart by netns.
    h.flows('nwm-a', 10);
    h.flows('nwm-b', 8);
    await h.step();
    const firing = h.alerts.filter((a) => a.state === 'firing');
    expect(firing.map((a) => [a.netns, a.severity, a.used])).toEqual([
      ['nwm-a', 'critical', 10],
      ['nwm-b', 'warning', 8],
    ]);
    expect(firing.map((a) => a.seq)).toEqual([1, 2]);
    expect(firing.every((a) => (a.key as PortKey).dstPort === 80)).toBe(true);
    expect(h.s.firing()).toHaveLength(2);
    expect(h.s.alertsSince(0).map((a) => a.netns)).toEqual(['nwm-a', 'nwm-b']);

    const st = h.stats.at(-1)!;
    expect(st.namespaces!.map((n) => n.netns)).toEqual([null, 'nwm-a', 'nwm-b']);
    expect(st.top.map((e) => [e.netns, e.used])).toEqual([['nwm-a', 10], ['nwm-b', 8]]);
    expect(st.namespaces![1]!.top).toEqual([expect.objectContaining({ netns: 'nwm-a', used: 10, capacity: 10 })]);
    expect(h.s.top()).toEqual(st.top);
    // Top-level numbers are the namespaces' sums.
    h.sources.get('nwm-a')!.snapshot.count = 10;
    h.sources.get('nwm-b')!.snapshot.count = 8;
    h.sources.get('nwm-b')!.snapshot.counters.drop = 3;
    await h.step();
    const st2 = h.stats.at(-1)!;
    expect(st2.conntrack.count).toBe(18);
    expect(st2.conntrack.max).toBe(3 * 262144);
    expect(st2.counters.drop).toBe(3);
    expect(st2.rates.drop).toBe(3);
    expect(st2.namespaces!.map((n) => n.counters.drop)).toEqual([0, 0, 3]);

    // Events carry their namespace.
    const events: WireEvent[] = [];
    h.s.on('event', (e) => events.push(e));
    h.flows('nwm-b', 1);
    h.flows(null, 1);
    expect(events.map((e) => e.netns)).toEqual(['nwm-b', null]);
    expect(h.s.totals().eventsReceived.conntrack).toBe(20);
  });

  it('a namespace deleted while running has its alerts resolved and its keys dropped; a new one is watched', async () => {
    const h = await make(['nwm-a', 'nwm-b']);
    h.flows('nwm-a', 10);
    h.flows('nwm-b', 10);
    await h.step();
    const srcA = h.sources.get('nwm-a')!;
    expect(h.alerts.filter((a) => a.state === 'firing')).toHaveLength(2);

    h.remove('nwm-a');
    await h.step();
    expect(srcA.closed).toBe(true);
    expect(h.s.namespaces()).toEqual([null, 'nwm-b']);
    const resolved = h.alerts.filter((a) => a.state === 'resolved');
    expect(resolved).toEqual([expect.objectContaining({ netns: 'nwm-a', kind: 'nat_port_exhaustion', key: KEY })]);
    expect(resolved[0]!.message).toMatch(/^Network namespace 'nwm-a' is no longer watched/);
    expect(h.s.firing().map((a) => a.netns)).toEqual(['nwm-b']);
    expect(h.s.top().map((e) => e.netns)).toEqual(['nwm-b']);
    await h.step();
    expect(h.stats.at(-1)!.namespaces!.map((n) => n.netns)).toEqual([null, 'nwm-b']);
    // Counters for /metrics never go back: a's events stay counted.
    expect(h.s.totals().eventsReceived.conntrack).toBe(20);

    // A namespace that appears is watched at the next scan, with its own alerts.
    h.add('nwm-c', 900_000_100);
    await h.step();
    expect(h.s.namespaces()).toEqual([null, 'nwm-b', 'nwm-c']);
    h.flows('nwm-c', 10);
    await h.step(200);
    expect(h.alerts.at(-1)).toMatchObject({ netns: 'nwm-c', state: 'firing', severity: 'critical' });
    // The same name for a new namespace (other inode) is a new pipeline: the old one's alerts resolve.
    const srcC = h.sources.get('nwm-c')!;
    h.remove('nwm-c');
    h.add('nwm-c2', 900_000_101);
    await h.step();
    expect(srcC.closed).toBe(true);
    expect(h.alerts.at(-1)).toMatchObject({ netns: 'nwm-c', state: 'resolved' });
  });

  it('--netns-exclude leaves matching names out; exclude without all is a usage error', async () => {
    const h = await make(['nwm-a', 'cni-1', 'cni-2'], { netnsExclude: ['cni-*'] });
    expect(h.s.namespaces()).toEqual([null, 'nwm-a']);
    expect(() => createStreamer({ netns: 'nwm-a', netnsExclude: ['x'] })).toThrow(/--netns-exclude: only with --netns all/);
  });

  it('a listed namespace that fails to start is reported (naming it) and tried again later', async () => {
    const errors: Error[] = [];
    const h = await make([]);
    h.s.on('error', (e) => errors.push(e));
    // Listed but not a namespace file: its start fails.
    const listed = { name: 'nwm-bad', path: join(dir, 'missing'), ino: 900_000_200 };
    (h.s as unknown as { follower: { list: () => NetnsEntry[] } }).follower.list = () => [listed];
    await h.step();
    expect(errors.map((e) => e.message)).toEqual(["netns nwm-bad: network namespace '" + join(dir, 'missing') + "' not found (" + join(dir, 'missing') + ')']);
    expect(h.s.namespaces()).toEqual([null]);
    symlinkSync('/proc/self/ns/net', join(dir, 'missing'));
    await h.step(); // within the retry delay: not tried
    expect(h.s.namespaces()).toEqual([null]);
    await h.step(5000);
    expect(h.s.namespaces()).toEqual([null, 'nwm-bad']);
  });

  it('explicit namespaces: one stats shape for one, namespaces[] for several; a missing one fails the start', async () => {
    symlinkSync('/proc/self/ns/net', join(dir, 'x'));
    const clock = new FakeClock();
    const one = createStreamer({ netns: join(dir, 'x'), source: new SyntheticSource(), clock, localAddrs: [] });
    open.push(one);
    await one.start();
    expect(one.netns).toBe(join(dir, 'x'));
    expect(one.lastStats()!.namespaces).toBeUndefined();
    const two = createStreamer({ netns: [null, join(dir, 'x')], sourceFor: () => new SyntheticSource(), clock, localAddrs: [] });
    open.push(two);
    await two.start();
    expect(two.lastStats()!.namespaces!.map((n) => n.netns)).toEqual([null, join(dir, 'x')]);
    const bad = createStreamer({ netns: [null, join(dir, 'nope')], sourceFor: () => new SyntheticSource(), clock, localAddrs: [] });
    await expect(bad.start()).rejects.toMatchObject({ code: 'ENETNS' });
  });
});

describe('Counter polling', () => {
  it('a drop reaches a critical alert at the next 200 ms poll while stats stay per second', async () => {
    // portCritical above 1: only drops at capacity make the key critical.
    const h = await make([], { thresholds: { portCritical: 1.5 } });
    h.flows(null, 10);
    await h.step(200);
    expect(h.alerts.map((a) => [a.severity, a.drops])).toEqual([['warning', 0]]);
    const statsBefore = h.stats.length;
    await h.step(400);
    const c = h.sources.get(null)!.snapshot.counters;
    c.insert_failed += 2;
    c.drop += 2;
    const t0 = h.clock.now();
    await h.step(200);
    expect(h.alerts.at(-1)).toMatchObject({ severity: 'critical', drops: 2, used: 10 });
    expect(Date.parse(h.alerts.at(-1)!.ts) - t0).toBeLessThanOrEqual(200);
    // 800 ms since the last stats: none yet; the next one carries the drop rate.
    expect(h.stats.length).toBe(statsBefore);
    await h.step(200);
    expect(h.stats.length).toBe(statsBefore + 1);
    expect(h.stats.at(-1)!.rates.drop).toBe(2);
  });

  it('drops read one poll before the events of the flows that explain them go to the key, not to conntrack_drops', async () => {
    const h = await make([]);
    const c = h.sources.get(null)!.snapshot.counters;
    h.flows(null, 9);
    await h.s.tick();
    c.insert_failed += 2;
    c.drop += 2;
    await h.s.tick(); // the 10th flow's NEW is still in a batch: these drops are held back
    expect(h.alerts.filter((a) => a.kind === 'conntrack_drops')).toEqual([]);
    h.flows(null, 1);
    await h.s.tick();
    expect(h.alerts.at(-1)).toMatchObject({ kind: 'nat_port_exhaustion', severity: 'critical', used: 10, drops: 2 });
    // Drops that stay unexplained are conntrack_drops at the first poll ≥ 150 ms later (a
    // batch waits up to 100 ms); a poll right after (the 1 s stats poll meeting the 200 ms one)
    // is too soon and keeps holding them.
    c.insert_failed += 3;
    c.drop += 3;
    const ids = [...Array(10).keys()].map((i) => i + 1);
    h.sources.get(null)!.conntrack(ids.map((id) => snatFlow(CtKind.Destroy, id, { src: '192.0.2.5', sport: 1000, dst: KEY.dstIp, dport: KEY.dstPort, natIp: KEY.natIp, natPort: 50000 })));
    await h.s.tick();
    expect(h.alerts.filter((a) => a.kind === 'conntrack_drops')).toEqual([]);
    await h.s.tick();
    expect(h.alerts.filter((a) => a.kind === 'conntrack_drops')).toEqual([]);
    await h.step(200);
    expect(h.alerts.filter((a) => a.kind === 'conntrack_drops')).toEqual([expect.objectContaining({ drops: 3, detail: expect.objectContaining({ insert_failed: 3 }) })]);
  });
});
