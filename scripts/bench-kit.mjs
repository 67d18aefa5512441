// What the lab benchmarks (bench-conn, bench-ingest, soak) share: building, the NAT lab, child
// processes, and reading a process's CPU, RSS and netlink drops from /proc. Root only; every
// wait is bounded; cleanup runs on every way out, signals included.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../', import.meta.url));
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Compiles the TypeScript into dist/ and a C helper from scripts/ into /tmp; returns its path. */
export function build(cSource, tag) {
  execFileSync(process.execPath, [`${ROOT}node_modules/typescript/bin/tsc`, '-p', `${ROOT}tsconfig.build.json`], { stdio: 'inherit' });
  const bin = `/tmp/${tag}-${process.pid}`;
  execFileSync('gcc', ['-O2', '-o', bin, `${ROOT}scripts/${cSource}`]);
  return bin;
}

/**
 * Runs fn once on the first of: a normal end (call cleanup()), SIGINT or SIGTERM (then exits
 * 130), so an interrupted run leaves no namespace and no process behind. aborted() tells a
 * running loop that a signal came.
 */
export function onExit(fn) {
  let running = null;
  let aborted = false;
  const cleanup = () => (running ??= Promise.resolve().then(fn));
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.once(sig, () => {
      aborted = true;
      console.error(`${sig}: cleaning up`);
      cleanup().finally(() => process.exit(130));
    });
  }
  return { cleanup, aborted: () => aborted };
}

/**
 * The lab of the cost benchmarks: client → router R (masquerade out of r-out) → server; the
 * client reuses its ports out of TIME_WAIT (its own namespace's sysctls only).
 */
export async function natLab(createLab, prefix) {
  const lab = await createLab({ prefix });
  try {
    await lab.nft(lab.router, 'table ip nat { chain post { type nat hook postrouting priority 100; oifname "r-out" masquerade; }; }');
    await lab.exec(lab.client, 'sysctl', ['-qw', 'net.ipv4.ip_local_port_range=1024 65535', 'net.ipv4.tcp_tw_reuse=1']);
  } catch (err) {
    await lab.destroy();
    throw err;
  }
  return lab;
}

// ---- child processes ------------------------------------------------------------------------

/** A port free right now on loopback, for serve's --listen. */
export const freePort = () =>
  new Promise((resolve, reject) => {
    const srv = createServer().once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });

export async function getText(url, ms = 15_000) {
  const res = await fetch(url, { signal: AbortSignal.timeout(ms) });
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.text();
}

/** serve is up once /healthz answers (it has subscribed and dumped by then). */
export async function waitHealthy(base, proc, ms = 15_000) {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (proc.exitCode !== null) throw new Error(`natwatch serve exited with ${proc.exitCode}`);
    try {
      await getText(`${base}/healthz`, 1000);
      return;
    } catch {
      await sleep(100);
    }
  }
  throw new Error(`natwatch serve not healthy after ${ms} ms`);
}

/** A conntrack-source counter of serve's /metrics (own namespace: no netns label). */
export const conntrackMetric = (text, name) => Number(new RegExp(`^${name}\\{[^}]*source="conntrack"[^}]*\\} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);

/** The first whole line of proc's stdout starting with prefix ('{' for a JSON result). */
export const lineOf = (proc, prefix = '{') =>
  new Promise((resolve) => {
    let out = '';
    const find = () => out.split('\n').slice(0, -1).find((l) => l.startsWith(prefix));
    proc.stdout.on('data', (d) => {
      out += d;
      const l = find();
      if (l !== undefined) resolve(l);
    });
    proc.once('close', () => resolve(find() ?? out)); // close: after stdout's last data
  });

export const exited = (p) => new Promise((r) => (p.exitCode !== null || p.signalCode !== null ? r() : p.once('exit', r)));

/** SIGTERM, then SIGKILL after 5 s; by the PID we started. */
export async function stop(p) {
  const kill = (sig) => {
    try {
      if (p.exitCode === null && p.signalCode === null && p.pid) process.kill(p.pid, sig);
    } catch {
      // already gone
    }
  };
  kill('SIGTERM');
  await Promise.race([exited(p), sleep(5000)]);
  kill('SIGKILL');
}

/**
 * A process script (`node --input-type=module -e SOURCE_COUNTER NETNS_PATH`): natwatch's
 * EventSource alone (the native reader, its batches, the views), reading each record's kind and
 * id, which is what the tracker touches first, and counting them; no tracker, rules or server.
 * Prints `ready` once subscribed and its exact totals when sent SIGTERM.
 */
export const SOURCE_COUNTER = `
const { createNetlinkSource } = await import(${JSON.stringify(`${ROOT}dist/source/netlink-source.js`)});
let n = 0, x = 0;
const src = createNetlinkSource({ netns: process.argv[1], dump: false });
await src.start({ conntrack(v) { for (let i = 0; i < v.count; i++) { v.seek(i); x ^= v.id + v.kind; n++; } }, nflog() {}, loss() {}, dumpBegin() {}, dumpEnd() {}, error(e) { console.error(e.message); } });
console.log('ready');
process.on('SIGTERM', async () => { await src.close(); console.log(JSON.stringify({ events: n, enobufs: src.stats.enobufs.conntrack, dropped: src.stats.dropped.conntrack, batches: src.stats.batches })); process.exit(0); });
`;

// ---- /proc ----------------------------------------------------------------------------------

// CPU time from the scheduler (/proc/…/schedstat: nanoseconds on CPU), not utime+stime: those
// are sampled at the tick (4 ms at HZ=250) and over a run of a few seconds jitter by ±20 %.
const taskNs = (path) => Number(readFileSync(`${path}/schedstat`, 'utf8').split(' ')[0]);

/** CPU seconds of every live thread of pid. */
export function cpuSeconds(pid) {
  let ns = 0;
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      ns += taskNs(`/proc/${pid}/task/${t}`);
    } catch {
      // exited
    }
  }
  return ns / 1e9;
}

/** CPU seconds per thread name (natwatch-nl, V8 workers...); node's main thread is `main`. */
export function threadCpu(pid) {
  const out = {};
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      const name = t === String(pid) ? 'main' : readFileSync(`/proc/${pid}/task/${t}/comm`, 'utf8').trim();
      out[name] = (out[name] ?? 0) + taskNs(`/proc/${pid}/task/${t}`) / 1e9;
    } catch {
      // exited
    }
  }
  return out;
}

/** VmRSS and VmHWM in MiB, and the thread count. */
export function memory(pid) {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)[1]);
  return { rssMiB: kib('VmRSS') / 1024, hwmMiB: kib('VmHWM') / 1024, threads: kib('Threads') };
}

const readlinkSafe = (p) => {
  try {
    return readlinkSync(p);
  } catch {
    return '';
  }
};

/**
 * Kernel Drops of each pid's NETLINK_NETFILTER sockets in namespace ns (/proc/net/netlink read
 * there), matched by socket inode: a process's port id is not always its pid.
 */
export async function netlinkDrops(lab, ns, pids) {
  const rows = (await lab.exec(ns, 'cat', ['/proc/net/netlink'])).stdout.trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/));
  const byInode = new Map(rows.filter((c) => c[1] === '12').map((c) => [c[9], Number(c[8])]));
  const out = new Map();
  for (const pid of pids) {
    let sum = 0;
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSafe(`/proc/${pid}/fd/${fd}`));
      if (m && byInode.has(m[1])) sum += byInode.get(m[1]);
    }
    out.set(pid, sum);
  }
  return out;
}
