#!/usr/bin/env node
// Cost per full TCP connection, side by side (root, one throwaway lab, ≈ 1 min): a C load
// generator (scripts/bench-conn.c) in the client namespace keeps CONC connects in flight for
// SECONDS through the router's masquerade (connect, close once established, the server closes
// back), then the router's table is flushed so every connection's DESTROY arrives now. Listening
// on the router at the same time:
//   serve           natwatch serve, no event consumer (NEW + DESTROY only)
//   serve+events    natwatch serve with one WebSocket client on types=event (UPDATE joined)
//   conntrack -E    conntrack-tools, output to /dev/null
//   bare            a C reader: NEW + DESTROY, 64 MiB, recvmmsg, counts messages
//   bare-all        the same with UPDATE
//   bare-window     bare, reading once per 25 ms window as serve does: the kernel's own cost
//                   of handing the events over, the floor for any reader of them
//   source          natwatch's EventSource alone (native reader, batches, views; no tracker,
//                   rules or server): serve's cost before tracking
//   bare-window-sender  bare-window also reading each datagram's sender as serve does
//   bare-uring      bare-window receiving with io_uring (multishot IORING_OP_RECVMSG, provided
//                   buffer ring, DEFER_TASKRUN): the same work, sender checked on every datagram
// Each listener's CPU (all its threads' time on CPU, /proc/PID/task/*/schedstat) over the run /
// connections.
// Loss is the kernel's: each listener's socket Drops in /proc/net/netlink.
// Then the idle cost of extra namespaces: one process with 1, 10, 50 native sources (each in its
// own namespace), RSS and threads; and that process's CPU per connection while one of its 50
// namespaces is the loaded router. Then the same for the whole daemon: serve watching the router
// alone, then the router and 49 namespaces with a masquerade rule each (RSS, threads and idle CPU
// after a warm-up, CPU per connection under load).
//   node scripts/bench-conn.mjs [--seconds 10] [--conc 64] [--namespaces 50] [--prof DIR]
//                               [--only serve,bare]  (a subset of listeners: less contention on
//                               a small machine; --namespaces 0 skips the namespace part)
//                               [--rcvbuf BYTES] [--uring-bufs N]  (bare-window and bare-uring
//                               only: a smaller receive buffer, fewer ring buffers, to check
//                               their overrun and re-arm paths; not a measurement)
import { execFileSync, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { build, conntrackMetric, cpuSeconds, exited, freePort, getText, lineOf, memory, natLab, netlinkDrops, onExit, ROOT, sleep, SOURCE_COUNTER, threadCpu, waitHealthy } from './bench-kit.mjs';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '10' }, conc: { type: 'string', default: '64' }, namespaces: { type: 'string', default: '50' }, prof: { type: 'string' }, only: { type: 'string' }, rcvbuf: { type: 'string' }, 'uring-bufs': { type: 'string' } } });
const ONLY = values.only ? new Set(values.only.split(',')) : null;
const wanted = (name) => !ONLY || ONLY.has(name);
const SECONDS = Math.min(Number(values.seconds), 60);
const CONC = Math.min(Number(values.conc), 1024);
const NAMESPACES = Math.min(Number(values.namespaces), 100);

const BIN = build('bench-conn.c', 'nwb-bench-conn');
const { createLab, ADDR } = await import(`${ROOT}dist/lab/topology.js`);
const { default: WebSocket } = await import(`${ROOT}node_modules/ws/index.js`);
const received = async (base) => conntrackMetric(await getText(`${base}/metrics`), 'natwatch_events_received_total');

/** One generator run in the client namespace through R, then R's table flushed (every DESTROY now). */
async function runLoad() {
  const t0 = Date.now();
  const gen = spawn('ip', ['netns', 'exec', lab.client, BIN, 'connect', ADDR.server, '80', String(SECONDS), String(CONC)], { stdio: ['ignore', 'pipe', 'inherit'] });
  procs.push(gen);
  const load = JSON.parse(await lineOf(gen));
  await exited(gen);
  const seconds = (Date.now() - t0) / 1000;
  await lab.exec(lab.router, 'conntrack', ['-F']);
  return { ...load, seconds };
}

/** Each listener's CPU seconds per second over SECONDS with no load. */
async function idleRates(listeners) {
  const c0 = listeners.map((l) => cpuSeconds(l.pid));
  const t0 = Date.now();
  await sleep(SECONDS * 1000);
  return listeners.map((l, i) => (cpuSeconds(l.pid) - c0[i]) / ((Date.now() - t0) / 1000));
}

/** A process's CPU per connection over one generator run (plus 2 s for the flush's DESTROYs). */
async function costUnderLoad(pid) {
  const c0 = cpuSeconds(pid);
  const load = await runLoad();
  await sleep(2000);
  return { connections: load.connections, usPerConnection: +(((cpuSeconds(pid) - c0) * 1e6) / load.connections).toFixed(2) };
}

const extra = [];
const procs = [];
let lab = null;
const { cleanup } = onExit(async () => {
  for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  for (const n of extra) {
    try {
      execFileSync('ip', ['netns', 'del', n]);
    } catch {
      // already gone
    }
  }
  await lab?.destroy();
  execFileSync('rm', ['-f', BIN]);
});
const report = { method: {}, listeners: [], namespaces: {} };
try {
  lab = await natLab(createLab, 'nwb');
  const server = spawn('ip', ['netns', 'exec', lab.server, BIN, 'serve', '80', String(SECONDS + 90)], { stdio: ['ignore', 'pipe', 'inherit'] });
  procs.push(server);
  await lineOf(server, 'ready');

  // Listeners.
  const devnull = openSync('/dev/null', 'w');
  const serveAt = async (name, prof = [], namespaces = [lab.router]) => {
    const port = await freePort();
    const netns = namespaces.flatMap((n) => ['--netns', n]);
    const p = spawn(process.execPath, [...prof, `${ROOT}bin/natwatch.js`, 'serve', ...netns, '--listen', `127.0.0.1:${port}`, '--log-level', 'warn'], { stdio: ['ignore', devnull, 'inherit'] });
    procs.push(p);
    const base = `http://127.0.0.1:${port}`;
    await waitHealthy(base, p, 60_000);
    return { name, pid: p.pid, base, proc: p };
  };
  // --prof DIR: the consumer-less serve writes a V8 CPU profile there when it exits.
  // Each listener: name, pid, and how to read its event count at the end.
  const listeners = [];
  const stops = [];
  if (wanted('serve')) {
    // --prof DIR: the consumer-less serve writes a V8 CPU profile there when it exits.
    const l = await serveAt('serve', values.prof ? ['--cpu-prof', `--cpu-prof-dir=${values.prof}`] : []);
    listeners.push(l);
  }
  let wsEvents = 0;
  let ws = null;
  if (wanted('serve+events')) {
    const l = await serveAt('serve+events');
    ws = new WebSocket(`ws://127.0.0.1:${new URL(l.base).port}/v1/stream?types=event`);
    ws.on('message', () => wsEvents++);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    listeners.push(l);
  }
  if (wanted('conntrack -E')) {
    const p = spawn('ip', ['netns', 'exec', lab.router, 'conntrack', '-E'], { stdio: ['ignore', devnull, 'ignore'] });
    procs.push(p);
    listeners.push({ name: 'conntrack -E', pid: p.pid, proc: p });
  }
  if (wanted('source')) {
    const p = spawn(process.execPath, ['--input-type=module', '-e', SOURCE_COUNTER, lab.nsPath(lab.router)], { stdio: ['ignore', 'pipe', 'inherit'] });
    procs.push(p);
    await lineOf(p, 'ready');
    listeners.push({ name: 'source', pid: p.pid, proc: p, result: lineOf(p) });
  }
  for (const [name, extraArgs] of [['bare', []], ['bare-all', ['all']], ['bare-window', ['window']], ['bare-window-sender', ['window-sender']], ['bare-uring', ['uring']]]) {
    if (!wanted(name)) continue;
    const check = values.rcvbuf || values['uring-bufs'] ? [String(Number(values.rcvbuf ?? 0)), String(Number(values['uring-bufs'] ?? 0))] : [];
    const p = spawn('ip', ['netns', 'exec', lab.router, BIN, 'read', String(SECONDS + 60), ...extraArgs, ...(name === 'bare-window' || name === 'bare-uring' ? check : [])], { stdio: ['ignore', 'pipe', 'inherit'] });
    procs.push(p);
    const result = lineOf(p);
    await lineOf(p, 'ready');
    listeners.push({ name, pid: p.pid, proc: p, result });
  }
  await sleep(1500); // everyone subscribed
  const servers = listeners.filter((l) => l.base);
  // Idle rate over the same length: serve's per-second work (counters, rules, stats, the
  // ruleset and address refreshes) is paid with or without connections. This one, right after
  // start, only tells when the load has settled; "net of idle" uses the warm one after the load.
  const idleRate = await idleRates(listeners);
  // Counters are read over /metrics outside the measured span: a scrape costs serve a few ms.
  const recv0 = await Promise.all(servers.map((l) => received(l.base)));
  await sleep(200);
  const cpu0 = listeners.map((l) => cpuSeconds(l.pid));
  const nodes = listeners.filter((l) => l.base || l.name === 'source');
  const threads0 = nodes.map((l) => threadCpu(l.pid));
  const t0 = Date.now();

  const load = await runLoad();
  const genSeconds = load.seconds;
  // Settled: every listener is back near its idle rate (twice it + 1 ms per 300 ms, twice in a row).
  let prev = listeners.map((l) => cpuSeconds(l.pid));
  for (let i = 0, quiet = 0; i < 200 && quiet < 2; i++) {
    await sleep(300);
    const now = listeners.map((l) => cpuSeconds(l.pid));
    quiet = now.every((c, k) => c - prev[k] < idleRate[k] * 0.6 + 0.001) ? quiet + 1 : 0;
    prev = now;
  }
  const cpu1 = listeners.map((l) => cpuSeconds(l.pid));
  const runSeconds = (Date.now() - t0) / 1000;
  const threads1 = nodes.map((l) => threadCpu(l.pid));
  const recv1 = await Promise.all(servers.map((l) => received(l.base)));
  // Kernel drops per listener socket (by inode).
  const dropsByPid = await netlinkDrops(lab, lab.router, listeners.map((l) => l.pid));
  const lost = listeners.map((l) => dropsByPid.get(l.pid));
  const warmIdle = await idleRates(listeners);
  for (const l of listeners) if (l.result) l.proc.kill('SIGTERM');
  const conns = load.connections;
  report.method = { seconds: SECONDS, concurrency: CONC, connections: conns, failed: load.failed, connPerSec: Math.round(conns / genSeconds) };
  for (const [i, l] of listeners.entries()) {
    const s = servers.indexOf(l);
    const result = s < 0 && l.result ? JSON.parse(await l.result) : null;
    const events = s >= 0 ? recv1[s] - recv0[s] : result ? result.events : null;
    const cpu = cpu1[i] - cpu0[i];
    const net = Math.max(0, cpu - warmIdle[i] * runSeconds);
    report.listeners.push({ listener: l.name, cpuSeconds: +cpu.toFixed(2), usPerConnection: +((cpu * 1e6) / conns).toFixed(2), idleCpuPerSecond: +warmIdle[i].toFixed(4), usPerConnectionNetOfIdle: +((net * 1e6) / conns).toFixed(2), events, eventsPerConnection: events === null ? null : +(events / conns).toFixed(2), kernelDrops: lost[i], ...(result && Object.keys(result).length > 2 ? { reader: result } : {}) });
  }
  if (ws) report.method.wsEventsDelivered = wsEvents;
  // Where the node listeners' CPU went, µs per connection by thread (main, natwatch-nl, V8's).
  report.threads = nodes.map((l, i) => ({
    listener: l.name,
    usPerConnection: Object.fromEntries(Object.entries(threads1[i]).map(([k, v]) => [k, +(((v - (threads0[i][k] ?? 0)) * 1e6) / conns).toFixed(2)]).filter(([, v]) => v > 0)),
  }));
  ws?.close();
  for (const l of servers) l.proc.kill('SIGTERM');
  for (const l of servers) await exited(l.proc); // a profile is written on the way out
  for (const l of listeners) if (!l.base && !l.result) l.proc.kill('SIGTERM');

  // --- idle cost per namespace, and 50 namespaces with one under load ---------------------
  if (NAMESPACES > 0) {
    const tag = randomBytes(3).toString('hex');
    for (let i = 0; i < NAMESPACES - 1; i++) {
      const name = `nwb-${tag}-i${i}`;
      execFileSync('ip', ['netns', 'add', name]);
      extra.push(name);
    }
    const CHILD = `
  const { createNetlinkSource } = await import(${JSON.stringify(`${ROOT}dist/source/netlink-source.js`)});
  const { readdirSync, readFileSync } = await import('node:fs');
  const rss = () => Number(/VmRSS:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) / 1024;
  const threads = () => readdirSync('/proc/self/task').length;
  const paths = process.argv.slice(1);
  const h = { conntrack(v) {}, nflog() {}, loss() {}, dumpBegin() {}, dumpEnd() {}, error() {} };
  globalThis.gc?.();
  const out = { base: { rss: rss(), threads: threads() } };
  const sources = [];
  for (const [i, p] of paths.entries()) {
    const s = createNetlinkSource({ netns: p });
    await s.start(h);
    sources.push(s);
    if (i + 1 === 1 || i + 1 === 10 || i + 1 === paths.length) {
      await new Promise((r) => setTimeout(r, 500));
      globalThis.gc?.();
      out[i + 1] = { rss: rss(), threads: threads() };
    }
  }
  process.stdout.write(JSON.stringify(out) + '\\n');
  process.on('SIGTERM', async () => { for (const s of sources) await s.close(); process.exit(0); });
  `;
    const child = spawn(process.execPath, ['--expose-gc', '--input-type=module', '-e', CHILD, lab.nsPath(lab.router), ...extra.map((n) => `/var/run/netns/${n}`)], { stdio: ['ignore', 'pipe', 'inherit'] });
    procs.push(child);
    const idle = JSON.parse(await lineOf(child));
    report.namespaces.idle = idle;
    const n = extra.length + 1;
    report.namespaces.perExtraNamespace = {
      rssMiB: +((idle[n].rss - idle[1].rss) / (n - 1)).toFixed(3),
      threads: (idle[n].threads - idle[1].threads) / (n - 1),
    };
    // Under load: one of the 50 is the router.
    report.namespaces.underLoad = { sources: n, ...(await costUnderLoad(child.pid)) };
    child.kill('SIGTERM');
    await exited(child);

    // The whole daemon: serve watching R alone, then R and the others (each with a masquerade
    // rule, as a tenant namespace would have): RSS, threads and idle CPU after a warm-up, then
    // CPU per connection with R under load.
    for (const name of extra) await lab.nft(name, 'table ip nat { chain post { type nat hook postrouting priority 100; oifname "x" masquerade; }; }');
    const serveIdle = async (namespaces) => {
      const sv = await serveAt(`serve ×${namespaces.length}`, [], namespaces);
      await sleep(10_000); // warm-up: start-up garbage collected, every namespace dumped
      const m0 = memory(sv.pid);
      const c = cpuSeconds(sv.pid);
      await sleep(10_000);
      return { sv, rssMiB: +m0.rssMiB.toFixed(1), threads: m0.threads, idleCpuMsPerSec: +(((cpuSeconds(sv.pid) - c) * 1000) / 10).toFixed(2) };
    };
    const one = await serveIdle([lab.router]);
    one.sv.proc.kill('SIGTERM');
    await exited(one.sv.proc);
    const all = await serveIdle([lab.router, ...extra]);
    const underLoad = await costUnderLoad(all.sv.pid);
    all.sv.proc.kill('SIGTERM');
    await exited(all.sv.proc);
    report.namespaces.serve = {
      one: { rssMiB: one.rssMiB, threads: one.threads, idleCpuMsPerSec: one.idleCpuMsPerSec },
      [n]: { rssMiB: all.rssMiB, threads: all.threads, idleCpuMsPerSec: all.idleCpuMsPerSec },
      perExtraNamespace: {
        rssMiB: +((all.rssMiB - one.rssMiB) / (n - 1)).toFixed(3),
        threads: (all.threads - one.threads) / (n - 1),
        idleCpuMsPerSec: +((all.idleCpuMsPerSec - one.idleCpuMsPerSec) / (n - 1)).toFixed(3),
      },
      underLoad,
    };
  }
  closeSync(devnull);
} finally {
  await cleanup();
}
console.log(JSON.stringify(report, null, 2));
