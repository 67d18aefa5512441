#!/usr/bin/env node
// Ingest benchmark (root, ≤ 20 s per row): in a throwaway lab, a raw-socket generator in the
// client namespace creates conntrack entries through the masquerading router as fast as this
// machine allows (or paced), then one flush destroys them all in a burst. Four listeners run
// side by side on the router namespace: `natwatch events --json >/dev/null`,
// `conntrack -E >/dev/null`, a bare EventSource, and the full daemon `natwatch serve` (source →
// tracker → alert rules → stats each second), without a WebSocket client or, in the --ws-rates
// rows, with one client subscribed to alert,stats; the --alone-rates rows run serve as the only
// listener (natwatch's target, lossless at the kernel's ceiling, is for one listener on this 2-core machine). Ground truth for loss is the kernel's: the
// Drops column of /proc/net/netlink for each listener's socket; natwatch's own counts (events'
// ENOBUFS loss lines, serve's /metrics) are reported beside it. Events generated = entries
// created (conntrack -C) x 2 (NEW + DESTROY).
//   node scripts/bench-ingest.mjs [--count N] [--rates full,50000,20000] [--ws-rates full] [--alone-rates full,20000] [--prof DIR]
//   (--prof DIR: serve runs with --cpu-prof into DIR; summarise with scripts/profile-summary.mjs)
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { build, conntrackMetric, cpuSeconds, exited, freePort, getText, memory, natLab, netlinkDrops, onExit, ROOT, sleep, SOURCE_COUNTER, waitHealthy } from './bench-kit.mjs';

const { values } = parseArgs({
  options: { count: { type: 'string', default: '200000' }, rates: { type: 'string', default: 'full,50000,20000' }, 'ws-rates': { type: 'string', default: 'full' }, 'alone-rates': { type: 'string', default: 'full,20000' }, prof: { type: 'string' } },
});
const COUNT = Math.min(Number(values.count), 1_000_000);
const rateList = (v) => (v ? v.split(',').map((r) => (r === 'full' ? 0 : Number(r))) : []);
const RUNS = [
  ...rateList(values.rates).map((rate) => ({ rate, ws: false, alone: false })),
  ...rateList(values['ws-rates']).map((rate) => ({ rate, ws: true, alone: false })),
  ...rateList(values['alone-rates']).map((rate) => ({ rate, ws: false, alone: true })),
];

const GEN = build('bench-ingest.c', 'nwa-bench-gen');
const { createLab, ADDR } = await import(`${ROOT}dist/lab/topology.js`);
const { default: WebSocket } = await import(`${ROOT}node_modules/ws/index.js`);


const hwmMiB = (pid) => memory(pid).hwmMiB;

let lab = null;
let live = [];
const { cleanup } = onExit(async () => {
  for (const p of live) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  await lab?.destroy();
  execFileSync('rm', ['-f', GEN]);
});
const rows = [];
try {
  lab = await natLab(createLab, 'nwa');
  // The server drops the flood quietly (no ICMP port-unreachable storm back through R).
  await lab.nft(lab.server, `table ip f { chain in { type filter hook input priority 0; udp dport >= 10000 drop; }; }`);
  const count = async () => Number((await lab.exec(lab.router, 'conntrack', ['-C'])).stdout.trim());
  const drops = (pids) => netlinkDrops(lab, lab.router, pids);

  for (const { rate, ws, alone } of RUNS) {
    await lab.exec(lab.router, 'conntrack', ['-F']);
    await sleep(300);
    const devnull = openSync('/dev/null', 'w');
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    // --prof DIR: serve writes a V8 CPU profile there when it exits (NODE_OPTIONS refuses --cpu-prof).
    const prof = values.prof ? ['--cpu-prof', `--cpu-prof-dir=${values.prof}`] : [];
    const sv = spawn(process.execPath, [...prof, `${ROOT}bin/natwatch.js`, 'serve', '--netns', lab.router, '--listen', `127.0.0.1:${port}`, '--log-level', 'warn'], { stdio: ['ignore', devnull, 'pipe'] });
    let svErr = '';
    sv.stderr.on('data', (d) => (svErr += d));
    const ct = alone ? null : spawn('ip', ['netns', 'exec', lab.router, 'conntrack', '-E'], { stdio: ['ignore', devnull, 'ignore'] });
    const nw = alone ? null : spawn(process.execPath, [`${ROOT}bin/natwatch.js`, 'events', '--netns', lab.router, '--json', '--no-dump'], { stdio: ['ignore', devnull, 'pipe'] });
    const src = alone ? null : spawn(process.execPath, ['--input-type=module', '-e', SOURCE_COUNTER, lab.nsPath(lab.router)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const procs = [sv, ct, nw, src].filter(Boolean);
    live = procs;
    let client = null;
    const wsSeen = { alert: 0, stats: 0, other: 0 };
    try {
      let srcOut = '';
      src?.stdout.on('data', (d) => (srcOut += d));
      let nwErr = '';
      nw?.stderr.on('data', (d) => (nwErr += d));
      await waitHealthy(base, sv, 8000);
      if (ws) {
        client = new WebSocket(`ws://127.0.0.1:${port}/v1/stream?types=alert,stats`);
        client.on('message', (data) => {
          const t = JSON.parse(data.toString()).type;
          wsSeen[t === 'alert' || t === 'stats' ? t : 'other']++;
        });
        await new Promise((resolve, reject) => {
          client.once('open', resolve);
          client.once('error', reject);
          setTimeout(() => reject(new Error('ws client: no open within 3 s')), 3000).unref();
        });
      }
      await sleep(1500); // all subscribed
      const cpu0 = procs.map((p) => cpuSeconds(p.pid));
      const before = await count();
      const args = [lab.client, GEN, ADDR.client, ADDR.server, String(COUNT), ...(rate ? [String(rate)] : [])];
      const gen = JSON.parse(execFileSync('ip', ['netns', 'exec', ...args], { timeout: 12_000 }).toString());
      await sleep(500);
      const created = (await count()) - before;
      const pids = procs.map((p) => p.pid);
      const dCreate = await drops(pids);
      const lostCreating = conntrackMetric(await getText(`${base}/metrics`), 'natwatch_events_lost_total');
      const t0 = Date.now();
      await lab.exec(lab.router, 'conntrack', ['-F']);
      const flushMs = Date.now() - t0;
      await sleep(3000); // let all drain the burst (and serve tick its stats)
      const d = await drops(pids);
      const cpuOf = new Map(procs.map((p, i) => [p, cpuSeconds(p.pid) - cpu0[i]]));
      const rssOf = new Map(procs.map((p) => [p, hwmMiB(p.pid)]));
      const [cpu, rss] = [cpuOf, rssOf].map((m) => ({ nw: m.get(nw), ct: m.get(ct), src: m.get(src), sv: m.get(sv) }));
      const dd = (p) => d.get(p?.pid), dc = (p) => dCreate.get(p?.pid);
      const metrics = await getText(`${base}/metrics`);
      client?.close();
      for (const p of procs) p.kill('SIGTERM');
      await Promise.all(procs.map(exited));
      const counted = src ? JSON.parse(srcOut.trim().split('\n').pop()) : null;
      const enobufs = [...nwErr.matchAll(/(\d+) receive-buffer overflows?/g)].reduce((a, m) => a + Number(m[1]), 0);
      const events = created * 2;
      const row = {
        target: (rate ? `${rate}/s` : 'full speed') + (ws ? ' + ws client' : '') + (alone ? ', serve alone' : ''),
        created,
        createRate: Math.round(created / gen.seconds),
        flushMs,
        events,
        natwatch: nw && { drops: dd(nw), dropsCreating: dc(nw), enobufs, cpu: cpu.nw, rssMiB: rss.nw },
        conntrackE: ct && { drops: dd(ct), dropsCreating: dc(ct), cpu: cpu.ct, rssMiB: rss.ct },
        source: src && { drops: dd(src), dropsCreating: dc(src), ...counted, received: counted.events, cpu: cpu.src, rssMiB: rss.src },
        serve: {
          drops: dd(sv),
          dropsCreating: dc(sv),
          received: conntrackMetric(metrics, 'natwatch_events_received_total'),
          lost: conntrackMetric(metrics, 'natwatch_events_lost_total'),
          lostCreating,
          cpu: cpu.sv,
          rssMiB: rss.sv,
          exit: sv.exitCode,
          ...(ws ? { ws: wsSeen } : {}),
          ...(svErr.trim() ? { log: svErr.trim().split('\n').slice(-3) } : {}),
        },
      };
      rows.push(row);
      console.log(JSON.stringify(row));
    } finally {
      client?.terminate();
      for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
      await Promise.race([Promise.all(procs.map(exited)), sleep(5000)]);
      closeSync(devnull);
    }
  }
} finally {
  await cleanup();
}

const pct = (lost, total) => `${((100 * lost) / total).toFixed(1)}%`;
const us = (cpu, n) => ((cpu * 1e6) / n).toFixed(2);
const table = (title, head, cells) => {
  console.log(`\n${title}\n\n| generator target | ${head.join(' | ')} |\n|---|${head.map(() => '---|').join('')}`);
  for (const r of rows) {
    const c = cells(r);
    if (c) console.log(`| ${r.target} | ${c.join(' | ')} |`);
  }
};
const mib = (x) => `${x.toFixed(0)} MiB`;
table('Runs', ['entries created', 'create rate (/s)', 'flush burst', 'events (NEW+DESTROY)'], (r) => [r.created, r.createRate, `${r.flushMs} ms`, r.events]);
table('natwatch serve (source → tracker → alerts → stats)', ['kernel Drops (while creating)', '/metrics received / lost (lost %; while creating)', 'CPU s (µs per kernel event / per received)', 'peak RSS', 'ws client got'], ({ serve: v, events }) => [
  `${v.drops} (${v.dropsCreating})`,
  `${v.received} / ${v.lost} (${pct(v.lost, events)}; ${v.lostCreating})`,
  `${v.cpu.toFixed(2)} (${us(v.cpu, events)} / ${us(v.cpu, v.received)})`,
  mib(v.rssMiB),
  v.ws ? `${v.ws.stats} stats, ${v.ws.alert} alerts` : '—',
]);
table('natwatch events --json', ['lost (Drops; while creating) / ENOBUFS', 'CPU s (µs/event)', 'peak RSS'], ({ natwatch: n, events }) => n && [
  `${n.drops} (${pct(n.drops, events)}; ${n.dropsCreating}) / ${n.enobufs}`,
  `${n.cpu.toFixed(2)} (${us(n.cpu, events - n.drops)})`,
  mib(n.rssMiB),
]);
table('EventSource only', ['received / lost (Drops)', 'CPU s (µs/event)', 'peak RSS'], ({ source: v }) => v && [`${v.received} / ${v.drops}`, `${v.cpu.toFixed(2)} (${us(v.cpu, v.received)})`, mib(v.rssMiB)]);
table('conntrack -E', ['lost (Drops; while creating)', 'CPU s (µs/event)', 'peak RSS'], ({ conntrackE: c, events }) => c && [
  `${c.drops} (${pct(c.drops, events)}; ${c.dropsCreating})`,
  `${c.cpu.toFixed(2)} (${us(c.cpu, events - c.drops)})`,
  mib(c.rssMiB),
]);
