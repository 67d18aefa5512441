#!/usr/bin/env node
// Tracker and alert benchmarks (BENCHMARKS.md "## Tracker and alerts").
//   node --expose-gc scripts/bench-track.mjs [--quick]
// 1. throughput: conntrack records/s through Streamer → flow table + occupancy + rings, with the
//    rules evaluated once per simulated second, on one core, from packed synthetic batches
//    (addresses formatted from integers on NEW, as the native view does);
// 2. memory: heap + ArrayBuffer bytes per live flow at 1,000,000 flows (10k keys, and the worst
//    case of one key per flow);
// 3. latency: wall time from a drop appearing in the kernel counters to the critical alert with
//    the real 1 s poll (mean/max over several runs at random phase).
// The TypeScript is compiled first into a temporary directory (no dist/ needed).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const quick = process.argv.includes('--quick');
const out = mkdtempSync(join(tmpdir(), 'nwb-bench-'));
process.on('exit', () => rmSync(out, { recursive: true, force: true }));
execFileSync(join(root, 'node_modules/.bin/tsc'), [
  '--outDir', out, '--rootDir', join(root, 'src'), '--module', 'nodenext', '--moduleResolution', 'nodenext',
  '--target', 'es2022', '--skipLibCheck', '--types', 'node', '--strict', '--ignoreConfig',
  join(root, 'src/streamer.ts'), join(root, 'src/source/synthetic.ts'),
], { stdio: 'inherit' });
const load = (p) => import(pathToFileURL(join(out, p)).href);
const { Streamer } = await load('streamer.js');
const { FakeClock } = await load('alert/clock.js');
const { SyntheticSource } = await load('source/synthetic.js');
const { Tracker } = await load('track/tracker.js');

const NEW = 1, UPDATE = 2, DESTROY = 3;
const ip4 = (n) => `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;

/** A ConntrackView over typed arrays, like the native codec's: strings only when asked. */
class PackedView {
  constructor(n) {
    this.count = 0;
    this.kinds = new Uint8Array(n);
    this.ids = new Uint32Array(n);
    this.src = new Uint32Array(n);
    this.dst = new Uint32Array(n);
    this.nat = new Uint32Array(n);
    this.sport = new Uint16Array(n);
    this.dport = new Uint16Array(n);
    this.natPort = new Uint16Array(n);
    this.i = 0;
  }
  seek(i) { this.i = i; return this; }
  get kind() { return this.kinds[this.i]; }
  get id() { return this.ids[this.i]; }
  get zone() { return 0; }
  get family() { return 4; }
  get proto() { return 6; }
  get status() { return 16; } // IPS_SRC_NAT
  get tcpState() { return 3; }
  get timeout() { return 120; }
  get mark() { return 0; }
  get origSport() { return this.sport[this.i]; }
  get origDport() { return this.dport[this.i]; }
  get replySport() { return this.dport[this.i]; }
  get replyDport() { return this.natPort[this.i]; }
  origSrc() { return ip4(this.src[this.i]); }
  origDst() { return ip4(this.dst[this.i]); }
  replySrc() { return ip4(this.dst[this.i]); }
  replyDst() { return ip4(this.nat[this.i]); }
  addrWord(which) { return which === 0 ? this.src[this.i] : which === 3 ? this.nat[this.i] : this.dst[this.i]; }
  get tsMs() { return 0; }
  toEvent() { throw new Error('not used'); }
}

const CLIENT = 0xc0000200; // 192.0.2.0
const SERVER = 0xc6336400; // 198.51.100.0
const NATIP = 0xcb007100; // 203.0.113.0

/** Fills a batch: flow lifecycles NEW, UPDATE, UPDATE, DESTROY over `live` concurrent flows. */
function makeWorkload(live, keys, batch) {
  let nextId = 1;
  const ring = new Uint32Array(live); // ids of live flows, FIFO
  let head = 0, size = 0;
  const upd = new Uint32Array(live);
  const meta = (id) => [CLIENT + (id % 200), SERVER + (id % keys) % 250 + 1, 80 + Math.floor((id % keys) / 250), NATIP + 1, 1024 + (id % 60000)];
  return (v) => {
    v.count = 0;
    while (v.count < batch) {
      let id, kind;
      if (size < live) {
        id = nextId++;
        kind = NEW;
        ring[(head + size) % live] = id;
        upd[(head + size) % live] = 0;
        size++;
      } else {
        const slot = head;
        id = ring[slot];
        if (upd[slot] < 2) {
          upd[slot]++;
          kind = UPDATE;
          head = (head + 1) % live;
          ring[(head + size - 1) % live] = id; // rotate to the back
          upd[(head + size - 1) % live] = upd[slot];
          if ((head + size - 1) % live !== slot) upd[slot] = 0;
        } else {
          kind = DESTROY;
          head = (head + 1) % live;
          size--;
        }
      }
      const [s, d, dp, n, np] = meta(id);
      const i = v.count++;
      v.kinds[i] = kind; v.ids[i] = id; v.src[i] = s; v.dst[i] = d; v.dport[i] = dp; v.nat[i] = n; v.natPort[i] = np; v.sport[i] = 30000 + (id % 30000);
    }
  };
}

async function throughput() {
  const clock = new FakeClock();
  const src = new SyntheticSource({ now: () => clock.now() });
  const s = new Streamer({ source: src, clock, localAddrs: [], natPorts: [1024, 65535] });
  let handlers;
  const orig = src.start.bind(src);
  src.start = async (h) => { handlers = h; return orig(h); };
  await s.start();
  const BATCH = 4096;
  const v = new PackedView(BATCH);
  const fill = makeWorkload(100_000, 10_000, BATCH);
  const total = quick ? 4_000_000 : 20_000_000;
  const perSecond = 1_000_000; // simulated kernel rate: one rules tick per 1M records
  // warm-up (fills the table to its steady 100k flows)
  for (let n = 0; n < 1_000_000; n += BATCH) { fill(v); handlers.conntrack(v); }
  const t0 = process.hrtime.bigint();
  const cpu0 = process.cpuUsage();
  let since = 0;
  for (let n = 0; n < total; n += BATCH) {
    fill(v);
    handlers.conntrack(v);
    since += BATCH;
    if (since >= perSecond) { since = 0; clock.advance(1000); await new Promise((r) => setImmediate(r)); }
  }
  const ns = Number(process.hrtime.bigint() - t0);
  const cpu = process.cpuUsage(cpu0);
  // The fill itself (workload generation) costs time too: measure it alone and subtract.
  const f0 = process.hrtime.bigint();
  for (let n = 0; n < total; n += BATCH) fill(v);
  const fillNs = Number(process.hrtime.bigint() - f0);
  // One evaluation (counter read + every rule + stats with top 10) over this table.
  const e0 = process.hrtime.bigint();
  const TICKS = 50;
  for (let i = 0; i < TICKS; i++) { clock.t += 1000; await s.tick(); }
  const tickMs = Number(process.hrtime.bigint() - e0) / 1e6 / TICKS;
  const tr = s.tracker;
  await s.close();
  return {
    tickMs,
    records: total,
    wallS: ns / 1e9,
    perSec: Math.round(total / ((ns - fillNs) / 1e9)),
    perSecInclGen: Math.round(total / (ns / 1e9)),
    cpuUsPerEvent: ((cpu.user + cpu.system) * 1000 - fillNs) / 1000 / total,
    liveFlows: tr.liveFlows,
    keys: tr.keys.count,
  };
}

/** gc twice with a turn between: ArrayBuffer backing stores are released by a later sweep. */
async function settle() {
  for (let i = 0; i < 3; i++) {
    globalThis.gc?.();
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function memory(keys, n = 1_000_000) {
  const BATCH = 4096;
  const v = new PackedView(BATCH);
  await settle();
  const m0 = process.memoryUsage();
  const tracker = new Tracker({ ringKeys: 2048 });
  let id = 1;
  while (id <= n) {
    v.count = 0;
    for (let i = 0; i < BATCH && id <= n; i++, id++) {
      v.kinds[i] = NEW; v.ids[i] = id; v.src[i] = CLIENT + (id % 200); v.nat[i] = NATIP + 1 + (id % 3);
      const k = id % keys;
      v.dst[i] = SERVER + (k & 0xffff); v.dport[i] = 1 + (k >>> 16); v.natPort[i] = 1024 + ((id / keys) | 0) % 60000; v.sport[i] = 1024 + (id % 60000);
      v.count++;
    }
    tracker.onConntrack(v, 1000);
  }
  await settle();
  const m1 = process.memoryUsage();
  const heap = m1.heapUsed - m0.heapUsed;
  const ab = m1.arrayBuffers - m0.arrayBuffers;
  const r = { flows: tracker.liveFlows, keys: tracker.keys.count, heapPerFlow: heap / n, arrayBuffersPerFlow: ab / n, totalPerFlow: (heap + ab) / n };
  return { r, tracker };
}

async function latency(runs) {
  const results = [];
  for (let k = 0; k < runs; k++) {
    const src = new SyntheticSource();
    const s = new Streamer({ source: src, localAddrs: [], natPorts: [50000, 50009] });
    await s.start();
    const recs = [];
    for (let i = 0; i < 10; i++) recs.push({ kind: NEW, id: i + 1, proto: 6, status: 16, orig: { src: '192.0.2.5', dst: '198.51.100.8', sport: 30000 + i, dport: 80 }, reply: { src: '198.51.100.8', dst: '198.51.100.1', sport: 80, dport: 50000 + i } });
    src.conntrack(recs);
    await new Promise((r) => setTimeout(r, 300 + Math.random() * 1000)); // random poll phase
    const got = new Promise((resolve) => s.on('alert', (a) => { if (a.drops > 0) resolve(a); }));
    const t0 = performance.now();
    src.snapshot.counters.insert_failed += 3;
    src.snapshot.counters.drop += 3;
    // the first critical (at 10/10) was sent at start; drops growth is re-sent after resendMs,
    // so measure on a fresh key state: close and re-fire would mix in the rate limit. Instead
    // count the time to the next tick that attributes the drops (the alert carries them).
    await Promise.race([got, new Promise((r) => setTimeout(r, 7000))]);
    results.push(performance.now() - t0);
    await s.close();
  }
  return results;
}

async function latencyFirst(runs) {
  // Time from the first drop to a *first* critical alert: the key sits at 9/10 (no alert below
  // 80%? 90% is a warning) — use a key at capacity but with warning thresholds out of reach, so
  // only the drop makes it critical.
  const results = [];
  for (let k = 0; k < runs; k++) {
    const src = new SyntheticSource();
    const s = new Streamer({ source: src, localAddrs: [], natPorts: [50000, 50009], thresholds: { portWarning: 1.5, portCritical: 2, portResolve: 0.7 } });
    await s.start();
    const recs = [];
    for (let i = 0; i < 10; i++) recs.push({ kind: NEW, id: i + 1, proto: 6, status: 16, orig: { src: '192.0.2.5', dst: '198.51.100.8', sport: 30000 + i, dport: 80 }, reply: { src: '198.51.100.8', dst: '198.51.100.1', sport: 80, dport: 50000 + i } });
    src.conntrack(recs);
    await new Promise((r) => setTimeout(r, 200 + Math.random() * 1000));
    const got = new Promise((resolve) => s.on('alert', (a) => resolve(a)));
    const t0 = performance.now();
    src.snapshot.counters.insert_failed += 1;
    src.snapshot.counters.drop += 1;
    const a = await Promise.race([got, new Promise((r) => setTimeout(() => r(null), 3000))]);
    results.push(a && a.severity === 'critical' ? performance.now() - t0 : NaN);
    await s.close();
  }
  return results;
}

const fmt = (x) => x.toLocaleString('en-US', { maximumFractionDigits: 2 });
const memArg = process.argv.indexOf('--memory');
if (memArg > 0) {
  // Child mode: one clean heap per measurement.
  const { r, tracker } = await memory(Number(process.argv[memArg + 1]));
  r.tableSlots = tracker.flows.slots;
  console.log(JSON.stringify(r));
  process.exit(0);
}
console.log(`node ${process.version}, ${quick ? 'quick' : 'full'} run, gc ${globalThis.gc ? 'exposed' : 'NOT exposed (run with --expose-gc)'}`);
const tp = await throughput();
console.log(`throughput: ${fmt(tp.records)} records (NEW/UPDATE/UPDATE/DESTROY over ${fmt(tp.liveFlows)} live flows, ${fmt(tp.keys)} keys), ${fmt(tp.wallS)} s`);
console.log(`  one rules+stats evaluation over that table: ${fmt(tp.tickMs)} ms`);
console.log(`  ${fmt(tp.perSec)} records/s through the tracker+rules (workload generation subtracted), ${fmt(tp.perSecInclGen)}/s including it; ${fmt(tp.cpuUsPerEvent)} µs CPU/record`);
for (const keys of [10_000, 1_000_000]) {
  const child = execFileSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--memory', String(keys)], { encoding: 'utf8' });
  const r = JSON.parse(child.trim().split('\n').at(-1));
  console.log(`memory @ ${fmt(r.flows)} flows, ${fmt(r.keys)} keys: ${fmt(r.totalPerFlow)} B/flow (heap ${fmt(r.heapPerFlow)} + typed arrays ${fmt(r.arrayBuffersPerFlow)})`);
}
const lat = await latencyFirst(quick ? 3 : 8);
const ok = lat.filter((x) => !Number.isNaN(x));
console.log(`first drop → critical alert (200 ms counter poll, random phase, ${lat.length} runs): mean ${fmt(ok.reduce((a, b) => a + b, 0) / ok.length)} ms, max ${fmt(Math.max(...ok))} ms, missed ${lat.length - ok.length}`);
void latency;
