// The server side of several namespaces: the netns stream filter, netns in ECS documents and
// netns labels on metrics, against a fake streamer.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type StandaloneServer } from '../../src/server/index.js';
import type { TopEntry } from '../../src/types.js';
import { FakeStreamer, TestClient } from '../helpers/fake-streamer.js';

let srv: StandaloneServer | undefined;
beforeAll(() => {
  process.env.NATWATCH_LOG_LEVEL ??= 'silent';
});
afterEach(async () => {
  await srv?.close();
  srv = undefined;
});

const KEY = { proto: 'tcp', natIp: '198.51.100.1', dstIp: '198.51.100.8', dstPort: 80 };

describe('netns on the server', () => {
  it('netns=NAME passes only that namespace\'s alerts and events; a subscribe changes it', async () => {
    const s = new FakeStreamer({ netns: 'all' });
    srv = await startServer(s, { port: 0 });
    const c = await TestClient.open(srv.url + '?netns=tenant-a&types=alert,event');
    await c.next('hello');
    s.emitAlert({ netns: 'tenant-b' });
    const a = s.emitAlert({ netns: 'tenant-a' });
    s.emitEvent({ netns: null });
    const e = s.emitEvent({ netns: 'tenant-a' });
    await c.next('event');
    expect(c.ofType('alert')).toEqual([a]);
    expect(c.ofType('event')).toEqual([e]);
    c.send({ type: 'subscribe', netns: '' });
    expect(await c.next('subscribed')).toMatchObject({ netns: null });
    const b = s.emitAlert({ netns: 'tenant-b' });
    await c.next('alert', 2);
    expect(c.ofType('alert')).toEqual([a, b]);
    c.close();
  });

  it('ECS alert documents carry natwatch.netns; /metrics labels a named namespace\'s series', async () => {
    const s = new FakeStreamer({ netns: 'all' });
    srv = await startServer(s, { port: 0 });
    const c = await TestClient.open(srv.url + '?format=ecs');
    await c.until((r) => r.length >= 1); // hello, as an ECS document
    s.emitAlert({ netns: 'tenant-a' });
    await c.until((r) => r.length >= 2);
    expect((c.received[1]!.msg as { natwatch: { netns: unknown } }).natwatch.netns).toBe('tenant-a');
    c.close();

    const top: TopEntry[] = [
      { netns: 'tenant-a', key: KEY, used: 10, capacity: 10, utilization: 1, newPerSec: 0 },
      { netns: null, key: KEY, used: 4, capacity: 10, utilization: 0.4, newPerSec: 0 },
    ];
    s.topEntries = top;
    const part = (netns: string | null, count: number) => ({ netns, conntrack: { count, max: 1000, buckets: 256 }, counters: { ...s.emitStats().counters, drop: count }, rates: { new: 0, destroy: 0, drop: 0 }, top: [] });
    s.emitStats({ namespaces: [part(null, 3), part('tenant-a', 7)] });
    const text = await (await fetch(srv.url.replace(/^ws/, 'http').replace('/v1/stream', '') + '/metrics')).text();
    expect(text).toMatch(/^natwatch_conntrack_entries 3$/m);
    expect(text).toMatch(/^natwatch_conntrack_entries\{netns="tenant-a"\} 7$/m);
    expect(text).toMatch(/^natwatch_conntrack_drop_total\{netns="tenant-a"\} 7$/m);
    expect(text).toMatch(/^natwatch_nat_ports_used\{proto="tcp",nat_ip="198\.51\.100\.1",dst_ip="198\.51\.100\.8",dst_port="80",netns="tenant-a"\} 10$/m);
    expect(text).toMatch(/^natwatch_nat_ports_used\{proto="tcp",nat_ip="198\.51\.100\.1",dst_ip="198\.51\.100\.8",dst_port="80"\} 4$/m);
  });

  it('/metrics with several namespaces: every series names a watched namespace, none the --netns list', async () => {
    const s = new FakeStreamer({ netns: 'all' });
    srv = await startServer(s, { port: 0 });
    const ns = (netns: string | null, conntrack: number, lost: number) => ({ netns, eventsReceived: { conntrack, nflog: 0 }, eventsLost: { conntrack: lost, nflog: 0 } });
    s.namespaceTotals = [ns(null, 3, 0), ns('tenant-a', 7, 2)];
    s.received = { conntrack: 10, nflog: 0 };
    s.lost = { conntrack: 2, nflog: 0 };
    s.emitAlert({ netns: 'tenant-a' });
    const text = await (await fetch(srv.url.replace(/^ws/, 'http').replace('/v1/stream', '') + '/metrics')).text();
    expect(text).not.toMatch(/netns="all"/);
    expect(text).toMatch(/^natwatch_events_received_total\{source="conntrack"\} 3$/m);
    expect(text).toMatch(/^natwatch_events_received_total\{source="conntrack",netns="tenant-a"\} 7$/m);
    expect(text).toMatch(/^natwatch_events_lost_total\{source="conntrack",netns="tenant-a"\} 2$/m);
    // Zeros for each watched namespace, the firing alert under its own.
    expect(text).toMatch(/^natwatch_alerts_firing\{kind="conntrack_table_full",severity="warning"\} 0$/m);
    expect(text).toMatch(/^natwatch_alerts_firing\{kind="conntrack_table_full",severity="warning",netns="tenant-a"\} 0$/m);
    expect(text).toMatch(/^natwatch_alerts_fired_total\{kind="conntrack_table_full",severity="critical",netns="tenant-a"\} 0$/m);
    expect(text).toMatch(/^natwatch_alerts_firing\{kind="nat_port_exhaustion",severity="critical",netns="tenant-a"\} 1$/m);
    expect(text).toMatch(/^natwatch_alert_seq 1$/m);
  });
});
