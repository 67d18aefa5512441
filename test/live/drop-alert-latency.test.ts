// Issue 11 item 5: a kernel drop reaches an alert within a quarter second. Through the lab NAT
// (10 ports), over 20 trials: 10 connections fill the range (a warning: the thresholds put
// critical out of reach of utilization, so only a drop can make the key critical), then one
// more connection is dropped by the kernel. Latency runs from the moment this test sees the
// kernel's insert_failed/drop counters move (its own reader polling the router every
// millisecond, so a loaded machine delays the start as much as the end) to the streamer's
// critical alert. Between trials the router's table is flushed, so the alert resolves.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Lab, PeerProcess } from '../../src/lab/topology.js';
import { createNetlinkSource, type NetlinkSource } from '../../src/source/netlink-source.js';
import { createStreamer, type Streamer } from '../../src/streamer.js';
import type { Alert, PortKey } from '../../src/types.js';
import { describeLive } from '../helpers/gate.js';
import { natLab } from '../helpers/nat-lab.js';
import { until } from '../helpers/wait.js';

const TRIALS = 20;
const KEY = 'tcp|198.51.100.1|198.51.100.8|80|N';

const isKey = (a: Alert): boolean => {
  const k = a.key as PortKey;
  return a.kind === 'nat_port_exhaustion' && k.natIp === '198.51.100.1' && k.dstIp === '198.51.100.8' && k.dstPort === 80;
};

describeLive('drops reach an alert within a quarter second (live, lab NAT)', () => {
  let lab: Lab;
  let streamer: Streamer | undefined;
  let probe: NetlinkSource | undefined;
  const peers: PeerProcess[] = [];

  beforeAll(async () => {
    lab = await natLab('nwmy');
  });

  afterAll(async () => {
    for (const p of peers) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await streamer?.close();
    await probe?.close();
    await lab?.destroy();
  });

  it(`p99 of first drop → critical alert over ${TRIALS} trials is under 300 ms; a counter poll costs little`, async () => {
    const router = lab.nsPath(lab.router);
    streamer = createStreamer({ netns: router, nflogGroups: [], thresholds: { portWarning: 0.8, portCritical: 1.5, portResolve: 0.7 } });
    const alerts: Alert[] = [];
    streamer.on('alert', (a) => alerts.push(a));
    await streamer.start();
    probe = createNetlinkSource({ netns: router, conntrack: false, nflogGroups: [], dump: false });
    await probe.start({ conntrack() {}, nflog() {}, loss() {}, dumpBegin() {}, dumpEnd() {}, error() {} });

    // What one poll costs: the per-CPU stats dump + the global count + the sysctl reads.
    const N = 2000;
    const cpu0 = process.cpuUsage();
    const w0 = performance.now();
    for (let i = 0; i < N; i++) await probe.readCounters();
    const wallUs = ((performance.now() - w0) * 1000) / N;
    const cpu = process.cpuUsage(cpu0);
    const cpuUs = (cpu.user + cpu.system) / N;
    console.log(`counter poll: ${wallUs.toFixed(1)} µs wall, ${cpuUs.toFixed(1)} µs CPU each (${N} reads); at 5 polls/s: ${((cpuUs * 5) / 1000).toFixed(2)} ms CPU per second per namespace`);

    const latencies: number[] = [];
    const dropsOf = (c: { insert_failed: number; drop: number }) => c.insert_failed + c.drop;
    for (let trial = 0; trial < TRIALS; trial++) {
      const since = alerts.length;
      const holder = lab.spawnPeer(lab.client, ['connect', '--proto', 'tcp', '--to', '198.51.100.8:80', '--count', '10', '--timeout-ms', '5000', '--hold-ms', '60000']);
      peers.push(holder);
      let out = '';
      holder.stdout!.on('data', (d: Buffer) => (out += d));
      await until(`trial ${trial}: 10 connections open`, () => out.includes('"ok":10'), 15_000);
      const keys = streamer.tracker.keys;
      await until(`trial ${trial}: the tracker holds 10 flows`, () => keys.used(keys.find(KEY)) === 10, 5_000);
      await until(`trial ${trial}: warning`, () => alerts.slice(since).some((a) => isKey(a) && a.state === 'firing'), 5_000);
      expect(alerts.slice(since).filter(isKey).every((a) => a.severity === 'warning')).toBe(true);

      const base = dropsOf((await probe.readCounters()).counters);
      let seenAt = 0;
      let critAt = 0;
      const onAlert = (a: Alert) => {
        if (!critAt && isKey(a) && a.severity === 'critical' && a.drops > 0) critAt = performance.now();
      };
      streamer.on('alert', onAlert);
      const watch = setInterval(() => {
        if (seenAt) return;
        void probe!.readCounters().then((s) => {
          if (!seenAt && dropsOf(s.counters) > base) seenAt = performance.now();
        });
      }, 1);
      const extra = lab.spawnPeer(lab.client, ['connect', '--proto', 'tcp', '--to', '198.51.100.8:80', '--count', '1', '--timeout-ms', '3000']);
      peers.push(extra);
      try {
        await until(`trial ${trial}: critical alert after the drop`, () => seenAt > 0 && critAt > 0, 5_000, 5);
      } finally {
        clearInterval(watch);
        streamer.off('alert', onAlert);
      }
      latencies.push(critAt - seenAt);

      holder.kill('SIGKILL');
      extra.kill('SIGKILL');
      await Promise.all([holder, extra].map((p) => new Promise((r) => (p.exitCode !== null || p.signalCode !== null ? r(null) : p.once('exit', r)))));
      // The killed peers' orphaned sockets may still send a FIN after the flush, which conntrack
      // picks up mid-stream and NATs: that entry would hold one of the 10 ports into the next
      // trial. Flush until no flow to the server is left (bounded).
      for (let i = 0; i < 20; i++) {
        const r = await lab.exec(lab.router, 'conntrack', ['-F']);
        expect(r.code, r.stderr).toBe(0);
        await new Promise((res) => setTimeout(res, 50));
        const left = (await lab.exec(lab.router, 'conntrack', ['-L', '-p', 'tcp', '--dport', '80'])).stdout.trim();
        if (left === '') break;
      }
      await until(`trial ${trial}: resolved after the flush`, () => alerts.slice(since).some((a) => isKey(a) && a.state === 'resolved'), 5_000);
    }

    const sorted = [...latencies].sort((a, b) => a - b);
    const pct = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
    console.log(
      `first drop → critical alert over ${TRIALS} trials (ms): min ${sorted[0]!.toFixed(1)}, median ${pct(50).toFixed(1)}, ` +
        `mean ${(sorted.reduce((a, b) => a + b, 0) / sorted.length).toFixed(1)}, p99 ${pct(99).toFixed(1)}, max ${sorted.at(-1)!.toFixed(1)}`,
    );
    expect(latencies).toHaveLength(TRIALS);
    expect(pct(99)).toBeLessThan(300);
  }, 240_000);
});
