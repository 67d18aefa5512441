#!/usr/bin/env node
// What each watched namespace costs an idle `natwatch serve --netns all` (BENCHMARKS.md
// "## Many namespaces"). Needs root and a build (npm run build).
//   node scripts/bench-netns.mjs [N]      (default 20)
// Starts serve with --netns all, excluding every name but this run's own, and reads its RSS,
// thread count and CPU (/proc/PID/status, /proc/PID/stat) over 10 s idle: first with natwatch's
// own namespace alone, then after N empty namespaces appeared (each with a NAT rule, so the
// ruleset reader has something to read). Everything made here is removed, also on failure.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';

const N = Math.min(Number(process.argv[2] ?? 20), 200);
const BIN = fileURLToPath(new URL('../bin/natwatch.js', import.meta.url));
const ID = randomBytes(3).toString('hex');
const PREFIX = `nwbn${ID}`;
const names = Array.from({ length: N }, (_, i) => `${PREFIX}-${i}`);
// Every name but PREFIX-*: globs for "does not start with PREFIX", one character at a time.
const exclude = [...PREFIX].map((c, i) => `${PREFIX.slice(0, i)}[!${c}]*`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const TICK = 100; // USER_HZ

function proc(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (k) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(status)[1]);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return { rssKiB: field('VmRSS'), threads: field('Threads'), cpuS: (Number(stat[11]) + Number(stat[12])) / TICK };
}

async function idle(pid, seconds) {
  const a = proc(pid);
  await sleep(seconds * 1000);
  const b = proc(pid);
  return { rssKiB: b.rssKiB, threads: b.threads, cpuMsPerS: ((b.cpuS - a.cpuS) * 1000) / seconds };
}

const port = await new Promise((resolve) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const p = s.address().port;
    s.close(() => resolve(p));
  });
});
const made = [];
let serve;
try {
  serve = spawn(process.execPath, [BIN, 'serve', '--listen', `127.0.0.1:${port}`, '--netns', 'all', ...exclude.flatMap((g) => ['--netns-exclude', g]), '--nflog-group', '47114'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  serve.stderr.on('data', (d) => (log += d));
  for (let i = 0; i < 100 && !log.includes('listening'); i++) await sleep(100);
  if (!log.includes('listening')) throw new Error(`serve did not start:\n${log}`);
  await sleep(3000);
  const base = await idle(serve.pid, 10);
  for (const n of names) {
    execFileSync('ip', ['netns', 'add', n]);
    made.push(n);
    execFileSync('ip', ['netns', 'exec', n, 'nft', '-f', '-'], { input: 'table ip nat { chain post { type nat hook postrouting priority 100; meta l4proto { tcp, udp } masquerade to :50000-50009; }; }' });
  }
  const t0 = Date.now();
  while (names.some((n) => !log.includes(`"netns":"${n}","msg":"watching namespace"`))) {
    if (Date.now() - t0 > 60_000) throw new Error('serve did not watch every namespace within 60 s');
    await sleep(50);
  }
  const allWatchedMs = Date.now() - t0;
  await sleep(3000);
  const loaded = await idle(serve.pid, 10);
  const per = (k) => (loaded[k] - base[k]) / N;
  console.log(`natwatch serve --netns all, idle, ${N} extra namespaces (watched ${allWatchedMs} ms after the last was added):`);
  console.log(`  own namespace only: RSS ${(base.rssKiB / 1024).toFixed(1)} MiB, ${base.threads} threads, CPU ${base.cpuMsPerS.toFixed(2)} ms/s`);
  console.log(`  + ${N} namespaces:   RSS ${(loaded.rssKiB / 1024).toFixed(1)} MiB, ${loaded.threads} threads, CPU ${loaded.cpuMsPerS.toFixed(2)} ms/s`);
  console.log(`  per namespace:      RSS ${(per('rssKiB') / 1024).toFixed(2)} MiB, ${per('threads').toFixed(2)} threads, CPU ${per('cpuMsPerS').toFixed(3)} ms/s (serve's own process)`);
} finally {
  serve?.kill('SIGTERM');
  for (const n of made) {
    try {
      execFileSync('ip', ['netns', 'del', n]);
    } catch {
      // already gone
    }
  }
}
