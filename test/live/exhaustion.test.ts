// Lab scenario port-exhaustion (README, docs/lab.md) end to end through the Streamer and the native netlink source:
// R masquerades to :50000-50009 (capacity detected from the ruleset, no override), the client
// opens 15 concurrent TCP connections to B:80; 10 get a NAT port, the kernel drops the rest.
// The streamer in R must fire nat_port_exhaustion {tcp, 198.51.100.1, 198.51.100.8, 80} with
// used=10, capacity=10, critical with drops > 0, and resolve once the connections close.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLab, type Lab, type PeerProcess } from '../../src/lab/topology.js';
import { createStreamer, type Streamer } from '../../src/streamer.js';
import type { Alert, PortKey } from '../../src/types.js';
import { natLab } from '../helpers/nat-lab.js';
import { describeLive } from '../helpers/gate.js';

/** Namespace-local conntrack timeouts in R, so closed flows leave its table within seconds. */
const FAST_CLOSE = [
  'net.netfilter.nf_conntrack_tcp_timeout_time_wait=1',
  'net.netfilter.nf_conntrack_tcp_timeout_close=1',
  'net.netfilter.nf_conntrack_tcp_timeout_fin_wait=1',
  'net.netfilter.nf_conntrack_tcp_timeout_close_wait=1',
  'net.netfilter.nf_conntrack_tcp_timeout_last_ack=1',
  'net.netfilter.nf_conntrack_tcp_timeout_syn_sent=5',
];

function waitFor(alerts: Alert[], pred: (a: Alert) => boolean, ms: number, streamer: Streamer): Promise<Alert> {
  const hit = alerts.find(pred);
  if (hit) return Promise.resolve(hit);
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      streamer.off('alert', on);
      reject(new Error(`no matching alert within ${ms} ms; got: ${JSON.stringify(alerts.map((a) => [a.kind, a.state, a.severity, a.used, a.drops]))}`));
    }, ms);
    const on = (a: Alert) => {
      if (!pred(a)) return;
      clearTimeout(t);
      streamer.off('alert', on);
      resolve(a);
    };
    streamer.on('alert', on);
  });
}

describeLive('nat_port_exhaustion live (lab scenario 1)', () => {
  let lab: Lab;
  let streamer: Streamer | undefined;
  let client: PeerProcess | undefined;

  beforeAll(async () => {
    lab = await natLab('nwb');
    const r = await lab.exec(lab.router, 'sysctl', ['-qw', ...FAST_CLOSE]);
    expect(r.code, r.stderr).toBe(0);
  });

  afterAll(async () => {
    await streamer?.close();
    if (client && client.exitCode === null && client.signalCode === null) client.kill('SIGKILL');
    await lab?.destroy();
  });

  it('fires critical with used=10/capacity=10 and drops, then resolves when the connections close', async () => {
    streamer = createStreamer({ netns: lab.nsPath(lab.router), nflogGroups: [] });
    const alerts: Alert[] = [];
    const errors: Error[] = [];
    streamer.on('alert', (a) => alerts.push(a));
    streamer.on('error', (e) => errors.push(e));
    await streamer.start();

    const t0 = Date.now();
    client = lab.spawnPeer(lab.client, ['connect', '--proto', 'tcp', '--to', '198.51.100.8:80', '--count', '15', '--timeout-ms', '3000', '--hold-ms', '6000']);
    const isKey = (a: Alert) => {
      const k = a.key as PortKey;
      return a.kind === 'nat_port_exhaustion' && k.proto === 'tcp' && k.natIp === '198.51.100.1' && k.dstIp === '198.51.100.8' && k.dstPort === 80;
    };
    const crit = await waitFor(alerts, (a) => isKey(a) && a.state === 'firing' && a.severity === 'critical' && a.drops > 0, 15_000, streamer);
    expect(crit).toMatchObject({ used: 10, capacity: 10, utilization: 1 });
    expect(crit.message).toMatch(/^NAT source ports for tcp 198\.51\.100\.1 → 198\.51\.100\.8:80 are exhausted: 10\/10 in use, \d+ connection attempts? dropped; /);
    console.log(`critical with drops ${Date.now() - t0} ms after the client started: ${crit.message}`);

    // The kernel agrees: 10 NAT'd flows, one per port of the range.
    const top = streamer.top()[0]!;
    expect(top).toMatchObject({ key: { natIp: '198.51.100.1', dstPort: 80 }, used: 10, capacity: 10 });

    const res = await waitFor(alerts, (a) => isKey(a) && a.state === 'resolved', 30_000, streamer);
    console.log(`resolved ${Date.now() - t0} ms after the client started (it holds its sockets 6 s): used ${res.used}`);
    expect(res.used).toBeLessThan(7);
    expect(res.seq).toBeGreaterThan(crit.seq);
    const seqs = alerts.map((a) => a.seq);
    expect([...seqs].sort((a, b) => a - b)).toEqual(seqs);
    expect(streamer.totals().eventsReceived.conntrack).toBeGreaterThanOrEqual(20);
    expect(streamer.totals().eventsLost.conntrack).toBe(0);
    expect(errors).toEqual([]);
  });
});

describeLive('local_port_exhaustion live (the host\'s own connections)', () => {
  let lab: Lab;
  let streamer: Streamer | undefined;
  let client: PeerProcess | undefined;

  beforeAll(async () => {
    lab = await createLab({ prefix: 'nwb' });
    // Namespace-local: 10 ephemeral ports in the client, and a ct rule so conntrack tracks there.
    const r = await lab.exec(lab.client, 'sysctl', ['-qw', 'net.ipv4.ip_local_port_range=40000 40009']);
    expect(r.code, r.stderr).toBe(0);
    await lab.nft(lab.client, 'table inet nwb_ct {\n chain out {\n  type filter hook output priority 0;\n  ct state new counter accept\n }\n}\n');
    const srv = lab.spawnPeer(lab.server, ['serve', '--proto', 'tcp', '--port', '80']);
    await srv.ready;
  });

  afterAll(async () => {
    await streamer?.close();
    if (client && client.exitCode === null && client.signalCode === null) client.kill('SIGKILL');
    await lab?.destroy();
  });

  it('the client namespace running out of ip_local_port_range to one destination fires critical at 10/10', async () => {
    streamer = createStreamer({ netns: lab.nsPath(lab.client), nflogGroups: [] });
    const alerts: Alert[] = [];
    streamer.on('alert', (a) => alerts.push(a));
    await streamer.start();
    client = lab.spawnPeer(lab.client, ['connect', '--proto', 'tcp', '--to', '198.51.100.8:80', '--count', '15', '--timeout-ms', '2000', '--hold-ms', '5000']);
    const a = await waitFor(alerts, (x) => x.kind === 'local_port_exhaustion' && x.state === 'firing', 15_000, streamer);
    expect(a).toMatchObject({ severity: 'critical', key: { proto: 'tcp', natIp: '192.0.2.5', dstIp: '198.51.100.8', dstPort: 80 }, used: 10, capacity: 10 });
    expect(a.message).toMatch(/^Local source ports from 192\.0\.2\.5 to tcp 198\.51\.100\.8:80 are exhausted: 10\/10 in use; widen net\.ipv4\.ip_local_port_range/);
    expect(alerts.some((x) => x.kind === 'nat_port_exhaustion')).toBe(false);
  });
});
