// /metrics v2: names, labels and values from the real server over a driven streamer, and
// `promtool check metrics` (Debian's promtool) printing nothing for the real output.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { release } from 'node:os';
import { startServer, type StandaloneServer } from '../../src/server/index.js';
import { VERSION } from '../../src/version.js';
import { FakeStreamer } from '../helpers/fake-streamer.js';
import { havePromtool, promtool } from '../helpers/promtool.js';
import { AlertmanagerPusher } from '../../src/alertmanager/pusher.js';

let srv: StandaloneServer | null = null;
beforeAll(() => {
  process.env.NATWATCH_LOG_LEVEL ??= 'silent';
});
afterEach(async () => {
  await srv?.close();
  srv = null;
});

const KEY = { proto: 'tcp', natIp: '198.51.100.1', dstIp: '198.51.100.8', dstPort: 80 };
const KEY_LABELS = 'proto="tcp",nat_ip="198.51.100.1",dst_ip="198.51.100.8",dst_port="80"';

/** A streamer with something in every series: top keys, alerts, NFLOG counts, NAT addresses. */
function busyStreamer(netns: string | null = null): FakeStreamer {
  const s = new FakeStreamer({ netns });
  s.topEntries = [{ key: KEY, used: 7, capacity: 10, utilization: 0.7, newPerSec: 2 }];
  s.nflogPackets = [{ group: 5, prefix: 'blocked-9999', packets: 12 }];
  s.natAddressList = [{ proto: 'tcp', natIp: '198.51.100.1', maxUtilization: 0.7, destinations: 1 }];
  s.lost.conntrack = 4;
  s.emitEvent();
  s.emitStats({ conntrack: { count: 4242, max: 65536, buckets: 16384 } });
  return s;
}

async function scrape(s: FakeStreamer): Promise<string> {
  srv ??= await startServer(s, { port: 0 });
  const res = await fetch(`http://127.0.0.1:${srv.address.port}/metrics`);
  expect(res.status).toBe(200);
  return res.text();
}

function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(series + ' ')) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

describe('/metrics v2', () => {
  it('table, kernel statistics, per-destination and per-address series, build info', async () => {
    const s = busyStreamer();
    const text = await scrape(s);
    expect(sample(text, 'natwatch_conntrack_entries')).toBe(4242);
    expect(sample(text, 'natwatch_conntrack_entries_limit')).toBe(65536);
    expect(sample(text, 'natwatch_conntrack_buckets')).toBe(16384);
    expect(text).not.toMatch(/natwatch_conntrack_max|natwatch_conntrack_counter_total|natwatch_destination_|client=/);
    for (const stat of ['found', 'invalid', 'insert', 'insert_failed', 'drop', 'early_drop', 'error', 'search_restart', 'clash_resolve', 'chaintoolong']) {
      expect(text).toContain(`# TYPE natwatch_conntrack_${stat}_total counter`);
    }
    expect(sample(text, 'natwatch_conntrack_insert_failed_total')).toBe(5);
    expect(sample(text, 'natwatch_conntrack_invalid_total')).toBe(1);
    expect(sample(text, `natwatch_nat_ports_used{${KEY_LABELS}}`)).toBe(7);
    expect(sample(text, `natwatch_nat_ports_limit{${KEY_LABELS}}`)).toBe(10);
    expect(sample(text, `natwatch_nat_ports_utilization_ratio{${KEY_LABELS}}`)).toBe(0.7);
    expect(sample(text, 'natwatch_nat_address_max_utilization_ratio{proto="tcp",nat_ip="198.51.100.1"}')).toBe(0.7);
    expect(sample(text, 'natwatch_nflog_packets_total{group="5",prefix="blocked-9999"}')).toBe(12);
    expect(sample(text, 'natwatch_events_received_total{source="conntrack"}')).toBe(1);
    expect(sample(text, 'natwatch_events_lost_total{source="conntrack"}')).toBe(4);
    expect(sample(text, `natwatch_build_info{version="${VERSION}",node_version="${process.version}",kernel="${release()}"}`)).toBe(1);
    // Process and Node.js defaults.
    expect(text).toMatch(/^process_cpu_seconds_total /m);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds /m);
  });

  it('alerts: firing by kind and severity, fired counts starts and escalations only', async () => {
    const s = busyStreamer();
    srv = await startServer(s, { port: 0 });
    s.emitAlert({ severity: 'warning', used: 8 });
    s.emitAlert({ severity: 'warning', used: 8, drops: 3 }); // a re-send: not fired again
    s.emitAlert({ severity: 'critical', used: 10 }); // escalation
    s.emitAlert({ kind: 'conntrack_table_full', key: {}, severity: 'warning' });
    let text = await scrape(s);
    expect(sample(text, 'natwatch_alerts_firing{kind="nat_port_exhaustion",severity="critical"}')).toBe(1);
    expect(sample(text, 'natwatch_alerts_firing{kind="nat_port_exhaustion",severity="warning"}')).toBe(0);
    expect(sample(text, 'natwatch_alerts_firing{kind="conntrack_table_full",severity="warning"}')).toBe(1);
    expect(sample(text, 'natwatch_alerts_firing{kind="event_loss",severity="critical"}')).toBe(0);
    expect(sample(text, 'natwatch_alerts_fired_total{kind="nat_port_exhaustion",severity="warning"}')).toBe(1);
    expect(sample(text, 'natwatch_alerts_fired_total{kind="nat_port_exhaustion",severity="critical"}')).toBe(1);
    expect(sample(text, 'natwatch_alerts_fired_total{kind="nflog_drop",severity="warning"}')).toBe(0);
    s.emitAlert({ state: 'resolved', severity: 'critical' });
    s.emitAlert({ severity: 'warning' }); // a new episode
    text = await scrape(s);
    expect(sample(text, 'natwatch_alerts_fired_total{kind="nat_port_exhaustion",severity="warning"}')).toBe(2);
  });

  it('a destination with a firing alert keeps its series when it is out of the top N', async () => {
    const s = busyStreamer();
    srv = await startServer(s, { port: 0 });
    const other = { proto: 'udp', natIp: '198.51.100.1', dstIp: '198.51.100.9', dstPort: 53 };
    s.emitAlert({ key: other, used: 9, capacity: 10 });
    const text = await scrape(s);
    expect(sample(text, 'natwatch_nat_ports_used{proto="udp",nat_ip="198.51.100.1",dst_ip="198.51.100.9",dst_port="53"}')).toBe(9);
  });

  it('a watched namespace adds netns="NAME" to natwatch series; its own namespace has no netns label', async () => {
    const text = await scrape(busyStreamer('/var/run/netns/gw-a'));
    expect(sample(text, 'natwatch_conntrack_entries{netns="gw-a"}')).toBe(4242);
    expect(sample(text, `natwatch_nat_ports_used{${KEY_LABELS},netns="gw-a"}`)).toBe(7);
    expect(sample(text, 'natwatch_events_received_total{source="conntrack",netns="gw-a"}')).toBe(1);
    await srv!.close();
    srv = null;
    expect(await scrape(busyStreamer())).not.toContain('netns=');
  });

  it('items naming their own namespace (a multi-namespace streamer) are labelled with it', async () => {
    const s = busyStreamer();
    s.topEntries = [{ ...s.topEntries[0]!, netns: 'gw-b' } as never];
    const part = (netns: string, count: number) => ({ netns, conntrack: { count, max: 1000, buckets: 256 }, counters: s.emitStats().counters, rates: { new: 0, destroy: 0, drop: 0 }, top: [] });
    s.emitStats({ namespaces: [part('gw-a', 10), part('gw-b', 20)] } as never);
    const text = await scrape(s);
    expect(sample(text, `natwatch_nat_ports_used{${KEY_LABELS},netns="gw-b"}`)).toBe(7);
    expect(sample(text, 'natwatch_conntrack_entries{netns="gw-a"}')).toBe(10);
    expect(sample(text, 'natwatch_conntrack_entries{netns="gw-b"}')).toBe(20);
    expect(sample(text, 'natwatch_conntrack_insert_failed_total{netns="gw-b"}')).toBe(5);
  });
});

describe.runIf(havePromtool())('promtool', () => {
  it('`promtool check metrics` prints nothing for the real /metrics output', async () => {
    const s = busyStreamer('/var/run/netns/gw-a');
    srv = await startServer(s, { port: 0 });
    // With the Alertmanager push's series too (nothing listens on port 9: errors counted).
    const pusher = new AlertmanagerPusher({ urls: ['http://127.0.0.1:9'], minBackoffMs: 10_000 });
    pusher.registerMetrics(srv.registry);
    pusher.attach(s);
    s.emitAlert();
    await new Promise((r) => setTimeout(r, 200));
    const text = await scrape(s);
    await pusher.close(10);
    expect(text).toMatch(/^natwatch_alertmanager_errors_total\{alertmanager="http:\/\/127\.0\.0\.1:9"\} 1$/m);
    const r = promtool(['check', 'metrics'], text);
    expect(r.stdout + r.stderr).toBe('');
    expect(r.status).toBe(0);
  });

  it('promtool does complain about a bad name (the check can fail)', () => {
    const r = promtool(['check', 'metrics'], '# HELP x_counter_total c\n# TYPE x_counter_total counter\nx_counter_total 1\n');
    expect(r.stdout + r.stderr).toMatch(/counter/);
  });
});
