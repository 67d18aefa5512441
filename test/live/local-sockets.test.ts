// local_port_exhaustion where conntrack sees nothing: a client namespace without a single
// netfilter rule (so the kernel does not track its own connections), ip_local_port_range
// narrowed to 10 ports, 15 connects. natwatch counts the sockets through sock_diag.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLab, type Lab, type PeerProcess } from '../../src/lab/topology.js';
import { readLocalSockets } from '../../src/source/local-sockets.js';
import { createStreamer, type Streamer } from '../../src/streamer.js';
import type { Alert } from '../../src/types.js';
import { describeLive } from '../helpers/gate.js';
import { until } from '../helpers/wait.js';

describeLive('local ports from sock_diag (no netfilter rule at all)', () => {
  let lab: Lab;
  let streamer: Streamer | undefined;
  let client: PeerProcess | undefined;

  beforeAll(async () => {
    lab = await createLab({ prefix: 'nwk' });
    const r = await lab.exec(lab.client, 'sysctl', ['-qw', 'net.ipv4.ip_local_port_range=40000 40009']);
    expect(r.code, r.stderr).toBe(0);
    await lab.spawnPeer(lab.server, ['serve', '--proto', 'tcp', '--port', '80']).ready;
  });

  afterAll(async () => {
    await streamer?.close();
    if (client && client.exitCode === null && client.signalCode === null) client.kill('SIGKILL');
    await lab?.destroy();
  });

  it('10 ports, 15 connects: local_port_exhaustion 10/10 fires although conntrack tracks nothing here', async () => {
    const rules = await lab.exec(lab.client, 'nft', ['list', 'ruleset']);
    expect(rules.stdout.trim()).toBe('');
    streamer = createStreamer({ netns: lab.nsPath(lab.client), nflogGroups: [] });
    const alerts: Alert[] = [];
    streamer.on('alert', (a) => alerts.push(a));
    await streamer.start();
    client = lab.spawnPeer(lab.client, ['connect', '--proto', 'tcp', '--to', '198.51.100.8:80', '--count', '15', '--timeout-ms', '2000', '--hold-ms', '5000']);
    await until('local_port_exhaustion firing', () => alerts.some((a) => a.kind === 'local_port_exhaustion' && a.state === 'firing'), 15_000);
    const a = alerts.find((x) => x.kind === 'local_port_exhaustion' && x.state === 'firing')!;
    expect(a).toMatchObject({ severity: 'critical', key: { proto: 'tcp', natIp: '192.0.2.5', dstIp: '198.51.100.8', dstPort: 80 }, used: 10, capacity: 10 });
    // conntrack saw none of it: the table dump of the client namespace is empty.
    expect(streamer.tracker.totals.news + streamer.tracker.totals.dumpRecords).toBe(0);
    // Counted by the addon: the 10 connections, not the server's listener nor anything else.
    const counts = await readLocalSockets(lab.nsPath(lab.client));
    expect([...counts]).toEqual([['tcp|192.0.2.5|198.51.100.8|80|L', 10]]);
  });
});
