#!/usr/bin/env node
// Soak of `natwatch serve` under continuous full-TCP-connection load (root, one throwaway lab,
// MINUTES + ≈ 1 min). The lab is client → NAT router R (masquerade) → server, as in
// scripts/bench-conn.mjs, and its C generator (scripts/bench-conn.c) is reused: in the client
// namespace it keeps CONC connects in flight, unthrottled (connect, close once established, the
// server closes back), in back-to-back segments of at most 60 s (the generator stops itself after
// 120 s whatever it is told), so the rate is the highest this machine's generator sustains.
// serve watches R with no stream client (NEW + DESTROY only). Every S seconds: serve's VmRSS and
// Threads (/proc/PID/status), its CPU (utime + stime, /proc/PID/stat), its /metrics
// natwatch_events_received_total and natwatch_events_lost_total (source conntrack), and the
// kernel's Drops for serve's netlink sockets in R (/proc/net/netlink, matched by inode).
// Prints a per-minute table and a verdict: RSS drift between minute 2 (after warm-up) and the
// last minute, flat if within ±10 %, and the events lost.
//   node scripts/soak.mjs [--minutes 10] [--sample-s 5] [--conc 256] [--max-connections N]
//                         [--node-arg=--trace-gc ...] [--serve-out FILE] [--json FILE]
// --node-arg passes a flag to serve's node (repeatable), e.g. --trace-gc with --serve-out FILE.
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
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
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const BIN = `/tmp/nwb-soak-conn-${process.pid}`;

// ---- cleanup on every way out ---------------------------------------------------------------
const procs = [];
let lab = null;
let cleaning = null;
const cleanup = () =>
  (cleaning ??= (async () => {
    for (const p of procs) {
      try {
        if (p.exitCode === null && p.signalCode === null && p.pid) process.kill(p.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    if (lab) await lab.destroy();
    try {
      execFileSync('rm', ['-f', BIN]);
    } catch {
      // ignore
    }
  })());
let aborted = false;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    if (aborted) return;
    aborted = true;
    console.error(`soak: ${sig}, cleaning up`);
    cleanup().finally(() => process.exit(130));
  });
}

execFileSync(process.execPath, [`${ROOT}node_modules/typescript/bin/tsc`, '-p', `${ROOT}tsconfig.build.json`], { stdio: 'inherit' });
execFileSync('gcc', ['-O2', '-o', BIN, `${ROOT}scripts/bench-conn.c`]);
const { createLab, ADDR } = await import(`${ROOT}dist/lab/topology.js`);

// ---- probes ---------------------------------------------------------------------------------
const TICK = 100; // USER_HZ
const cpuSeconds = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / TICK;
};
const status = (pid) => {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  return { rssKiB: Number(/^VmRSS:\s+(\d+)/m.exec(s)[1]), threads: Number(/^Threads:\s+(\d+)/m.exec(s)[1]) };
};
const readlinkSafe = (p) => {
  try {
    return readlinkSync(p);
  } catch {
    return '';
  }
};
const socketInodes = (pid) => {
  const out = new Set();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    const m = /^socket:\[(\d+)\]$/.exec(readlinkSafe(`/proc/${pid}/fd/${fd}`));
    if (m) out.add(m[1]);
  }
  return out;
};
/** Kernel Drops summed over serve's NETLINK_NETFILTER sockets in R. */
const netlinkDrops = async (pid) => {
  const r = await lab.exec(lab.router, 'cat', ['/proc/net/netlink']);
  const mine = socketInodes(pid);
  let sum = 0;
  for (const l of r.stdout.trim().split('\n').slice(1)) {
    const c = l.trim().split(/\s+/);
    if (c[1] === '12' && mine.has(c[9])) sum += Number(c[8]);
  }
  return sum;
};
const metric = (text, name) => Number(new RegExp(`^${name}\\{[^}]*source="conntrack"[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
const freePort = () =>
  new Promise((resolve, reject) => {
    const srv = createServer().once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
const lineOf = (proc, prefix = '{') =>
  new Promise((resolve) => {
    let out = '';
    const find = () => out.split('\n').slice(0, -1).find((l) => l.startsWith(prefix));
    proc.stdout.on('data', (d) => {
      out += d;
      const l = find();
      if (l !== undefined) resolve(l);
    });
    proc.once('exit', () => resolve(find() ?? out));
  });
const exited = (p) => new Promise((r) => (p.exitCode !== null || p.signalCode !== null ? r() : p.once('exit', r)));
const stop = async (p) => {
  const kill = (sig) => {
    try {
      if (p.exitCode === null && p.signalCode === null) process.kill(p.pid, sig);
    } catch {
      // already gone
    }
  };
  kill('SIGTERM');
  await Promise.race([exited(p), sleep(5000)]);
  kill('SIGKILL');
};

const mean = (a) => a.reduce((s, x) => s + x, 0) / a.length;
const fmt = (x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');

try {
  lab = await createLab({ prefix: 'nwb' });
  await lab.nft(lab.router, 'table ip nat { chain post { type nat hook postrouting priority 100; oifname "r-out" masquerade; }; }');
  // The client reuses its ports out of TIME_WAIT (its own namespace's sysctls only).
  await lab.exec(lab.client, 'sysctl', ['-qw', 'net.ipv4.ip_local_port_range=1024 65535', 'net.ipv4.tcp_tw_reuse=1']);

  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const out = values['serve-out'] ? openSync(values['serve-out'], 'w') : openSync('/dev/null', 'w');
  const serve = spawn(process.execPath, [...values['node-arg'], `${ROOT}bin/natwatch.js`, 'serve', '--netns', lab.router, '--listen', `127.0.0.1:${port}`, '--log-level', 'warn'], { stdio: ['ignore', out, 'inherit'] });
  procs.push(serve);
  closeSync(out);
  for (let i = 0; ; i++) {
    if (serve.exitCode !== null) throw new Error(`serve exited ${serve.exitCode}`);
    if (i >= 150) throw new Error('serve not healthy after 15 s');
    try {
      if ((await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(1000) })).ok) break;
    } catch {
      // not yet
    }
    await sleep(100);
  }
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
    for (let seg = 0; seg < Math.ceil(MINUTES) + 1 && !aborted && total < MAX_CONNS; seg++) {
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
      if (aborted) break; // killed by the signal handler: no result line
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
    const text = await (await fetch(`${base}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
    const { rssKiB, threads } = status(serve.pid);
    samples.push({ t, rssKiB, threads, cpu: cpuSeconds(serve.pid), received: metric(text, 'natwatch_events_received_total'), lost: metric(text, 'natwatch_events_lost_total'), drops: await netlinkDrops(serve.pid) });
  };
  await sample();
  for (let i = 1; i <= maxSamples && !genDone && !aborted; i++) {
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
  console.log('| minute | conn/s | failed | RSS mean MiB | RSS max MiB | serve CPU % | threads | events/s | events lost (cum.) | kernel drops (cum.) |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const m of minutes) {
    console.log(`| ${m.minute} | ${m.connPerS ?? '-'} | ${m.failed ?? '-'} | ${fmt(m.rssMeanMiB)} | ${fmt(m.rssMaxMiB)} | ${fmt(m.cpuPct)} | ${m.threads} | ${fmt(m.eventsPerS, 0)} | ${m.lost} | ${m.drops} |`);
  }
  console.log(
    `\nverdict: ${connections} connections (${verdict.connPerS}/s, ${failed} failed); RSS ${verdict.rssFrom} ${fmt(cmpFrom.rssMeanMiB)} MiB → ${verdict.rssTo} ${fmt(cmpTo.rssMeanMiB)} MiB: drift ${verdict.rssDriftPct} % → ${verdict.rssFlat ? 'FLAT (within ±10 %)' : 'NOT FLAT'}; events received ${verdict.eventsReceived} (${verdict.eventsPerConnection}/connection), lost ${verdict.eventsLost}, kernel drops ${verdict.kernelDrops}; threads ${verdict.threadsMin}–${verdict.threadsMax}`,
  );
  if (values.json) writeFileSync(values.json, JSON.stringify({ verdict, minutes, segments, samples }, null, 2));
  await stop(serve);
} finally {
  await cleanup();
}
