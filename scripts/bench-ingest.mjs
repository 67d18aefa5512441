#!/usr/bin/env node
// Ingest benchmark (root, ≤ 60 s per row): in a throwaway lab, a raw-socket generator in the
// client namespace creates conntrack entries through the masquerading router as fast as this
// machine allows (or paced), then one flush destroys them all in a burst. Two listeners run
// side by side in the router namespace: `natwatch events --json >/dev/null` and
// `conntrack -E >/dev/null`. Ground truth for loss is the kernel's: the Drops column of
// /proc/net/netlink for each listener's socket; natwatch's own ENOBUFS count (its stderr loss
// lines) is reported beside it. Events generated = entries created (conntrack -C) x 2
// (NEW + DESTROY).
//   node scripts/bench-ingest.mjs [--count N] [--rates full,100000,25000]
import { execFileSync, spawn } from 'node:child_process';
import { openSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const { values } = parseArgs({ options: { count: { type: 'string', default: '200000' }, rates: { type: 'string', default: 'full,100000,25000' } } });
const COUNT = Math.min(Number(values.count), 1_000_000);
const RATES = values.rates.split(',').map((r) => (r === 'full' ? 0 : Number(r)));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

execFileSync(process.execPath, [`${ROOT}node_modules/typescript/bin/tsc`, '-p', `${ROOT}tsconfig.build.json`], { stdio: 'inherit' });
const GEN = `/tmp/nwa-bench-gen-${process.pid}`;
execFileSync('gcc', ['-O2', '-o', GEN, `${ROOT}scripts/bench-ingest.c`]);
const { createLab, ADDR } = await import(`${ROOT}dist/lab/topology.js`);

// Third listener: the EventSource alone, reading each record's kind and id (what the tracker
// touches) and counting them; prints its exact totals when told to stop.
const COUNTER = `
const { createNetlinkSource } = await import(${JSON.stringify(`${ROOT}dist/source/netlink-source.js`)});
let n = 0, x = 0;
const src = createNetlinkSource({ netns: process.argv[1], dump: false });
await src.start({ conntrack(v) { for (let i = 0; i < v.count; i++) { v.seek(i); x ^= v.id + v.kind; n++; } }, nflog() {}, loss() {}, dumpBegin() {}, dumpEnd() {}, error(e) { console.error(e.message); } });
process.on('SIGTERM', async () => { await src.close(); console.log(JSON.stringify({ received: n, enobufs: src.stats.enobufs.conntrack, dropped: src.stats.dropped.conntrack, batches: src.stats.batches })); process.exit(0); });
`;

function readlinkSafe(p) {
  try {
    return readlinkSync(p);
  } catch {
    return '';
  }
}

const TICK = 100; // USER_HZ for /proc/PID/stat
function cpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / TICK; // utime + stime
}
const hwmMiB = (pid) => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;

const lab = await createLab({ prefix: 'nwa' });
const rows = [];
try {
  await lab.nft(lab.router, `table ip nat { chain post { type nat hook postrouting priority 100; oifname "r-out" masquerade; }; }`);
  // The server drops the flood quietly (no ICMP port-unreachable storm back through R).
  await lab.nft(lab.server, `table ip f { chain in { type filter hook input priority 0; udp dport >= 10000 drop; }; }`);
  const count = async () => Number((await lab.exec(lab.router, 'conntrack', ['-C'])).stdout.trim());
  // Drops of a process's NETLINK_NETFILTER sockets, found by socket inode (its port id is not
  // always its pid: conntrack -E's event socket is its second one).
  const drops = async (pids) => {
    const t = (await lab.exec(lab.router, 'cat', ['/proc/net/netlink'])).stdout.trim().split('\n').slice(1).map((l) => l.trim().split(/\s+/));
    const byInode = new Map(t.filter((c) => c[1] === '12').map((c) => [c[9], Number(c[8])]));
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
  };

  for (const rate of RATES) {
    await lab.exec(lab.router, 'conntrack', ['-F']);
    await sleep(300);
    const devnull = openSync('/dev/null', 'w');
    const ct = spawn('ip', ['netns', 'exec', lab.router, 'conntrack', '-E'], { stdio: ['ignore', devnull, 'ignore'] });
    const nw = spawn(process.execPath, [`${ROOT}bin/natwatch.js`, 'events', '--netns', lab.router, '--json', '--no-dump'], { stdio: ['ignore', devnull, 'pipe'] });
    const src = spawn(process.execPath, ['--input-type=module', '-e', COUNTER, lab.nsPath(lab.router)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let srcOut = '';
    src.stdout.on('data', (d) => (srcOut += d));
    let nwErr = '';
    nw.stderr.on('data', (d) => (nwErr += d));
    await sleep(1500); // both subscribed
    const cpu0 = { nw: cpuSeconds(nw.pid), ct: cpuSeconds(ct.pid), src: cpuSeconds(src.pid) };
    const before = await count();
    const args = [lab.client, GEN, ADDR.client, ADDR.server, String(COUNT), ...(rate ? [String(rate)] : [])];
    const gen = JSON.parse(execFileSync('ip', ['netns', 'exec', ...args], { timeout: 40_000 }).toString());
    await sleep(500);
    const created = (await count()) - before;
    const dCreate = await drops([nw.pid, ct.pid, src.pid]);
    const t0 = Date.now();
    await lab.exec(lab.router, 'conntrack', ['-F']);
    const flushMs = Date.now() - t0;
    await sleep(3000); // let both drain the burst
    const d = await drops([nw.pid, ct.pid, src.pid]);
    const cpu = { nw: cpuSeconds(nw.pid) - cpu0.nw, ct: cpuSeconds(ct.pid) - cpu0.ct, src: cpuSeconds(src.pid) - cpu0.src };
    const rss = { nw: hwmMiB(nw.pid), ct: hwmMiB(ct.pid), src: hwmMiB(src.pid) };
    for (const p of [nw, ct, src]) p.kill('SIGTERM');
    await Promise.all([nw, ct, src].map((p) => new Promise((r) => (p.exitCode === null ? p.once('exit', r) : r()))));
    const counted = JSON.parse(srcOut.trim().split('\n').pop());
    const enobufs = [...nwErr.matchAll(/(\d+) receive-buffer overflows?/g)].reduce((a, m) => a + Number(m[1]), 0);
    const events = created * 2;
    const row = {
      target: rate ? `${rate}/s` : 'full speed',
      created,
      createRate: Math.round(created / gen.seconds),
      flushMs,
      events,
      natwatch: { drops: d.get(nw.pid), dropsCreating: dCreate.get(nw.pid), enobufs, cpu: cpu.nw, rssMiB: rss.nw },
      conntrackE: { drops: d.get(ct.pid), dropsCreating: dCreate.get(ct.pid), cpu: cpu.ct, rssMiB: rss.ct },
      source: { drops: d.get(src.pid), dropsCreating: dCreate.get(src.pid), ...counted, cpu: cpu.src, rssMiB: rss.src },
    };
    rows.push(row);
    console.log(JSON.stringify(row));
  }
} finally {
  await lab.destroy();
  execFileSync('rm', ['-f', GEN]);
}

const pct = (lost, total) => `${((100 * lost) / total).toFixed(1)}%`;
const us = (cpu, n) => ((cpu * 1e6) / n).toFixed(2);
console.log('\n| generator target | entries created | create rate (/s) | flush burst | events (NEW+DESTROY) | natwatch events --json: lost (Drops; while creating) / ENOBUFS | CPU s (µs/event) | peak RSS | conntrack -E: lost (Drops; while creating) | CPU s (µs/event) | peak RSS | EventSource only: received / lost (Drops) | CPU s (µs/event) | peak RSS |');
console.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  const n = r.natwatch, c = r.conntrackE, s = r.source;
  console.log(`| ${r.target} | ${r.created} | ${r.createRate} | ${r.flushMs} ms | ${r.events} | ${n.drops} (${pct(n.drops, r.events)}; ${n.dropsCreating}) / ${n.enobufs} | ${n.cpu.toFixed(2)} (${us(n.cpu, r.events - n.drops)}) | ${n.rssMiB.toFixed(0)} MiB | ${c.drops} (${pct(c.drops, r.events)}; ${c.dropsCreating}) | ${c.cpu.toFixed(2)} (${us(c.cpu, r.events - c.drops)}) | ${c.rssMiB.toFixed(0)} MiB | ${s.received} / ${s.drops} | ${s.cpu.toFixed(2)} (${us(s.cpu, s.received)}) | ${s.rssMiB.toFixed(0)} MiB |`);
}
