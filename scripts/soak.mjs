#!/usr/bin/env node
// Soak of `natwatch serve` under continuous full-TCP-connection load (root, one throwaway lab,
// MINUTES + ≈ 1 min). The lab is client → NAT router R (masquerade) → server, as in
// scripts/bench-conn.mjs, and its C generator (scripts/bench-conn.c) is reused: in the client
// namespace it keeps CONC connects in flight, unthrottled (connect, close once established, the
// server closes back), in back-to-back segments of at most 60 s (the generator stops itself after
// 120 s whatever it is told), so the rate is the highest this machine's generator sustains.
// serve watches R with no stream client (NEW + DESTROY only). Every S seconds: serve's VmRSS and
// Threads (/proc/PID/status), its CPU (schedstat, all threads), its /metrics
// natwatch_events_received_total and natwatch_events_lost_total (source conntrack), and the
// kernel's Drops for serve's netlink sockets in R (/proc/net/netlink, matched by inode).
// Prints a per-minute table and a verdict: RSS drift between minute 2 (after warm-up) and the
// last minute, flat if within ±10 %, and the events lost.
//   node scripts/soak.mjs [--minutes 10] [--sample-s 5] [--conc 256] [--max-connections N]
//                         [--node-arg=--trace-gc ...] [--serve-out FILE] [--json FILE]
// --node-arg passes a flag to serve's node (repeatable), e.g. --trace-gc with --serve-out FILE.
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { build, conntrackMetric, cpuSeconds, exited, freePort, getText, lineOf, memory, natLab, netlinkDrops, onExit, ROOT, sleep, stop, threadCpu, waitHealthy } from './bench-kit.mjs';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    'sample-s': { type: 'string', default: '5' },
    conc: { type: 'string', default: '256' },
    'max-connections': { type: 'string', default: String(1e9) },
    'node-arg': { type: 'string', multiple: true, default: [] },
    'serve-out': { type: 'string' },
    json: { type: 'string' },
  },
});
const num = (name, lo, hi) => {
  const v = Number(values[name]);
  if (!Number.isFinite(v) || v < lo || v > hi) {
    console.error(`soak: --${name} must be a number in [${lo}, ${hi}]`);
    process.exit(2);
  }
  return v;
};
const MINUTES = num('minutes', 1, 120);
const SAMPLE_S = num('sample-s', 1, 60);
const CONC = num('conc', 1, 4096);
const MAX_CONNS = num('max-connections', 1, 1e12);
const SEGMENT_S = 60;

const BIN = build('bench-conn.c', 'nwb-soak-conn');
const { createLab, ADDR } = await import(`${ROOT}dist/lab/topology.js`);

const procs = [];
let lab = null;
const { cleanup, aborted } = onExit(async () => {
  for (const p of procs) {
    try {
      if (p.exitCode === null && p.signalCode === null && p.pid) process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await lab?.destroy();
  execFileSync('rm', ['-f', BIN]);
});

const status = (pid) => {
  const m = memory(pid);
  return { rssKiB: m.rssMiB * 1024, threads: m.threads };
};
const mean = (a) => a.reduce((s, x) => s + x, 0) / a.length;
const fmt = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');

try {
  lab = await natLab(createLab, 'nwb');

  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const out = values['serve-out'] ? openSync(values['serve-out'], 'w') : openSync('/dev/null', 'w');
  const serve = spawn(process.execPath, [...values['node-arg'], `${ROOT}bin/natwatch.js`, 'serve', '--netns', lab.router, '--listen', `127.0.0.1:${port}`, '--log-level', 'warn'], { stdio: ['ignore', out, 'inherit'] });
  procs.push(serve);
  closeSync(out);
  await waitHealthy(base, serve);
  await sleep(2000);
  const idle = status(serve.pid);

  const samples = [];
  const segments = [];
  const t0 = Date.now();
  const deadline = t0 + MINUTES * 60_000;
  let genDone = false;

  // Load: back-to-back generator segments, bounded by the deadline, a segment count and a
  // connection count.
  const load = (async () => {
    let total = 0;
    for (let seg = 0; seg < Math.ceil(MINUTES) + 1 && !aborted() && total < MAX_CONNS; seg++) {
      const left = (deadline - Date.now()) / 1000;
      if (left < 1) break;
      const len = Math.min(SEGMENT_S, left);
      const srv = spawn('ip', ['netns', 'exec', lab.server, BIN, 'serve', '80', String(len + 15)], { stdio: ['ignore', 'pipe', 'inherit'] });
      procs.push(srv);
      await lineOf(srv, 'ready');
      const start = Date.now();
      const gen = spawn('ip', ['netns', 'exec', lab.client, BIN, 'connect', ADDR.server, '80', String(len), String(CONC)], { stdio: ['ignore', 'pipe', 'inherit'] });
      procs.push(gen);
      const line = await lineOf(gen);
      await exited(gen);
      await stop(srv);
      if (aborted()) break; // killed by the signal handler: no result line
      const res = JSON.parse(line);
      segments.push({ start: start - t0, end: Date.now() - t0, ...res });
      total += res.connections;
    }
    genDone = true;
  })();
  load.catch(() => {}); // awaited below; while a signal cleans up it must not crash the process

  // Samples every SAMPLE_S, aligned to t0, while the load runs (bounded by count as well).
  const maxSamples = Math.ceil((MINUTES * 60) / SAMPLE_S) + 30;
  const sample = async () => {
    const t = Date.now() - t0;
    const text = await getText(`${base}/metrics`, 10_000);
    const { rssKiB, threads } = status(serve.pid);
    samples.push({ t, rssKiB, threads, cpu: cpuSeconds(serve.pid), byThread: threadCpu(serve.pid), received: conntrackMetric(text, 'natwatch_events_received_total'), lost: conntrackMetric(text, 'natwatch_events_lost_total'), drops: (await netlinkDrops(lab, lab.router, [serve.pid])).get(serve.pid) });
  };
  await sample();
  for (let i = 1; i <= maxSamples && !genDone && !aborted(); i++) {
    await sleep(Math.max(0, t0 + i * SAMPLE_S * 1000 - Date.now()));
    if (serve.exitCode !== null) throw new Error(`serve exited ${serve.exitCode} during the soak`);
    if (!genDone) await sample();
  }
  await load;
  await sleep(2000);
  await sample(); // the tail of the last events
  const end = samples.at(-1);

  // ---- per-minute table ---------------------------------------------------------------------
  const minutes = [];
  for (let m = 0; m < Math.ceil(MINUTES); m++) {
    const inM = samples.filter((s) => s.t > m * 60_000 && s.t <= (m + 1) * 60_000);
    if (inM.length === 0) continue;
    const prev = samples.filter((s) => s.t <= m * 60_000).at(-1) ?? samples[0];
    const last = inM.at(-1);
    const dt = (last.t - prev.t) / 1000;
    const seg = segments[m];
    minutes.push({
      minute: m + 1,
      connPerS: seg ? Math.round(seg.connections / ((seg.end - seg.start) / 1000)) : null,
      failed: seg?.failed ?? null,
      rssMeanMiB: mean(inM.map((s) => s.rssKiB)) / 1024,
      rssMaxMiB: Math.max(...inM.map((s) => s.rssKiB)) / 1024,
      cpuPct: ((last.cpu - prev.cpu) / dt) * 100,
      // µs of CPU per connection: all threads, then the JS thread, the reader, V8's workers.
      us: seg ? [last.cpu - prev.cpu, ...['main', 'natwatch-nl', 'node'].map((k) => (last.byThread[k] ?? 0) - (prev.byThread[k] ?? 0))].map((c) => (c * 1e6) / ((seg.connections / ((seg.end - seg.start) / 1000)) * dt)) : null,
      threads: Math.max(...inM.map((s) => s.threads)),
      eventsPerS: (last.received - prev.received) / dt,
      lost: last.lost,
      drops: last.drops,
    });
  }
  const connections = segments.reduce((s, x) => s + x.connections, 0);
  const failed = segments.reduce((s, x) => s + x.failed, 0);
  const cmpFrom = minutes.find((m) => m.minute === 2) ?? minutes[0];
  const cmpTo = minutes.at(-1);
  const drift = ((cmpTo.rssMeanMiB - cmpFrom.rssMeanMiB) / cmpFrom.rssMeanMiB) * 100;
  const verdict = {
    connections,
    failed,
    connPerS: Math.round(connections / (segments.reduce((s, x) => s + x.end - x.start, 0) / 1000)),
    idleRssMiB: +(idle.rssKiB / 1024).toFixed(1),
    rssDriftPct: +drift.toFixed(1),
    rssFrom: `minute ${cmpFrom.minute}`,
    rssTo: `minute ${cmpTo.minute}`,
    rssFlat: Math.abs(drift) <= 10,
    eventsReceived: end.received - samples[0].received,
    eventsPerConnection: +((end.received - samples[0].received) / connections).toFixed(2),
    eventsLost: end.lost,
    kernelDrops: end.drops,
    threadsMin: Math.min(...samples.map((s) => s.threads)),
    threadsMax: Math.max(...samples.map((s) => s.threads)),
  };

  console.log(`\nserve idle before load: RSS ${fmt(idle.rssKiB / 1024)} MiB, ${idle.threads} threads; samples every ${SAMPLE_S} s; generator concurrency ${CONC}\n`);
  console.log('| minute | conn/s | failed | RSS mean MiB | RSS max MiB | serve CPU % | µs CPU/conn (JS / reader / V8) | threads | events/s | events lost (cum.) | kernel drops (cum.) |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const m of minutes) {
    console.log(`| ${m.minute} | ${m.connPerS ?? '-'} | ${m.failed ?? '-'} | ${fmt(m.rssMeanMiB)} | ${fmt(m.rssMaxMiB)} | ${fmt(m.cpuPct)} | ${m.us ? `${fmt(m.us[0], 2)} (${m.us.slice(1).map((u) => fmt(u, 2)).join(' / ')})` : '-'} | ${m.threads} | ${fmt(m.eventsPerS, 0)} | ${m.lost} | ${m.drops} |`);
  }
  console.log(
    `\nverdict: ${connections} connections (${verdict.connPerS}/s, ${failed} failed); RSS ${verdict.rssFrom} ${fmt(cmpFrom.rssMeanMiB)} MiB → ${verdict.rssTo} ${fmt(cmpTo.rssMeanMiB)} MiB: drift ${verdict.rssDriftPct} % → ${verdict.rssFlat ? 'FLAT (within ±10 %)' : 'NOT FLAT'}; events received ${verdict.eventsReceived} (${verdict.eventsPerConnection}/connection), lost ${verdict.eventsLost}, kernel drops ${verdict.kernelDrops}; threads ${verdict.threadsMin}–${verdict.threadsMax}`,
  );
  if (values.json) writeFileSync(values.json, JSON.stringify({ verdict, minutes, segments, samples }, null, 2));
  await stop(serve);
} finally {
  await cleanup();
}
