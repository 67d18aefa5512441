#!/usr/bin/env node
// The tracker replayed in serve's steady state (BENCHMARKS.md "Tracker replay, serve's regime").
//   node scripts/bench-track-steady.mjs [--ref REF ...] [--children N] [--runs N] [--cycles N]
//                                       [--streamer] [--pollute MB] [--ports N] [--prof DIR] [--node-arg ARG ...]
// What serve's JS thread does per conntrack batch without an event consumer, offline: packed
// batches laid out as the native reader's (codec.ts LAYOUT, read through CtBatchView, the view
// serve uses), 384 connections per batch = 768 records (NEW + DESTROY), IPv4, masquerade (status
// IPS_SRC_NAT, reply dst = the NAT address), one destination 203.0.113.10:80, source port = NAT
// port cycling through 1024–65535. Each NEW carries a fresh random-looking u32 conntrack id and
// comes right after the DESTROY of the flow that held its port one cycle earlier, so ≈ 64.5k
// flows are live throughout (serve under load: 15,400 connections/s, DESTROY ≈ 4 s after NEW).
// Simulated time advances 25 ms per batch (≈ 15,400 connections/s), which moves the rings.
//
// Each variant is src/ of the working tree or of a git ref (`--ref main`), compiled with tsc into
// a temporary directory. Every measurement runs in a fresh child process (its own JIT and heap),
// variants alternate child by child so that both meet the same machine; a child fills the table,
// warms up, then times `--runs` runs of `--cycles` port cycles (64,512 connections each) and
// reports the median. The summary gives, per variant, the median over children and the range.
// `--streamer` feeds the same batches through Streamer's handlers (the namespace pipeline, rules
// ticking once per simulated second) instead of Tracker.onConntrack alone.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const argv = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : dflt;
};
const all = (name) => argv.flatMap((a, i) => (a === name ? [argv[i + 1]] : []));

const CONN_PER_BATCH = 384;
const PORT_LO = 1024;
// `--ports N` (a multiple of 384) shrinks the live set, to see the cost with every table in cache.
const PORTS = Number(opt('--ports', '64512')); // 1024–65535: 168 batches of 384
const PORT_HI = PORT_LO + PORTS - 1;
if (!(PORTS > 0 && PORTS % CONN_PER_BATCH === 0 && PORT_HI <= 65535)) throw new Error(`--ports: a multiple of ${CONN_PER_BATCH} up to ${65536 - PORT_LO}`);
const BATCHES_PER_CYCLE = PORTS / CONN_PER_BATCH;
/** Id cycles in the pool: the ids of cycle c are destroyed in cycle c + 1 (mod POOL_CYCLES). */
const POOL_CYCLES = 3;
const BATCH_MS = 25;

// ---------------------------------------------------------------- child: one measurement
async function child(dir, streamer, runs, cycles, pollute) {
  const load = (p) => import(pathToFileURL(join(dir, p)).href);
  const { LAYOUT, CtBatchView, readHeader } = await load('source/codec.js');
  const { Tracker } = await load('track/tracker.js');

  // Kernel-like ids: murmur3's fmix32 of a counter (a bijection, so all distinct).
  const fmix = (h) => {
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    return (h ^ (h >>> 16)) >>> 0;
  };
  const CLIENT = [192, 0, 2, 2];
  const SERVER = [203, 0, 113, 10];
  const NATIP = [198, 51, 100, 1];
  const R = LAYOUT.ctRecordSize;
  const put4 = (b, off, a) => { for (let i = 0; i < 4; i++) b[off + i] = a[i]; };
  const pool = [];
  let t0ms = Date.UTC(2026, 0, 1);
  for (let c = 0; c < POOL_CYCLES; c++) {
    const prev = (c + POOL_CYCLES - 1) % POOL_CYCLES;
    for (let bi = 0; bi < BATCHES_PER_CYCLE; bi++) {
      const n = CONN_PER_BATCH * 2;
      const b = Buffer.alloc(LAYOUT.headerSize + n * R);
      b.writeUInt32LE(LAYOUT.magic, LAYOUT.hdrMagic);
      b.writeUInt16LE(LAYOUT.version, LAYOUT.hdrVersion);
      b[LAYOUT.hdrKind] = LAYOUT.kindConntrack;
      b.writeUInt32LE(n, LAYOUT.hdrCount);
      b.writeUInt32LE(R, LAYOUT.hdrRecordSize);
      for (let j = 0; j < CONN_PER_BATCH; j++) {
        const pi = bi * CONN_PER_BATCH + j;
        const port = PORT_LO + pi;
        for (const [k, kind, id] of [[0, 3, fmix(prev * PORTS + pi + 1)], [1, 1, fmix(c * PORTS + pi + 1)]]) {
          const at = LAYOUT.headerSize + (j * 2 + k) * R;
          b.writeDoubleLE(t0ms, at + LAYOUT.ctTs);
          b.writeUInt32LE(id, at + LAYOUT.ctId);
          // IPS_SRC_NAT | SRC_NAT_DONE | DST_NAT_DONE | CONFIRMED (+ SEEN_REPLY, ASSURED at the end)
          b.writeUInt32LE(kind === 1 ? 0x198 : 0x19e, at + LAYOUT.ctStatus);
          b.writeUInt32LE(kind === 1 ? 120 : 0, at + LAYOUT.ctTimeout);
          b[at + LAYOUT.ctKind] = kind;
          b[at + LAYOUT.ctFamily] = 4;
          b[at + LAYOUT.ctProto] = 6;
          b.writeInt8(kind === 1 ? 1 : 7, at + LAYOUT.ctTcpState); // SYN_SENT, TIME_WAIT
          b.writeUInt16LE(port, at + LAYOUT.ctOrigSport);
          b.writeUInt16LE(80, at + LAYOUT.ctOrigDport);
          b.writeUInt16LE(80, at + LAYOUT.ctReplySport);
          b.writeUInt16LE(port, at + LAYOUT.ctReplyDport);
          put4(b, at + LAYOUT.ctOrigSrc, CLIENT);
          put4(b, at + LAYOUT.ctOrigDst, SERVER);
          put4(b, at + LAYOUT.ctReplySrc, SERVER);
          put4(b, at + LAYOUT.ctReplyDst, NATIP);
        }
      }
      pool.push(b);
      t0ms += BATCH_MS;
    }
  }

  // The consumer: Tracker.onConntrack as NamespacePipeline calls it, or Streamer's handlers.
  const view = new CtBatchView();
  let simMs = Date.UTC(2026, 0, 1);
  let feed;
  let tracker;
  let tick = async () => {};
  if (streamer) {
    const { Streamer } = await load('streamer.js');
    const { FakeClock } = await load('alert/clock.js');
    const { SyntheticSource } = await load('source/synthetic.js');
    const clock = new FakeClock(simMs);
    const src = new SyntheticSource({ now: () => clock.now() });
    const s = new Streamer({ source: src, clock, localAddrs: [], natPorts: [PORT_LO, PORT_HI] });
    let handlers;
    const orig = src.start.bind(src);
    src.start = async (h) => { handlers = h; return orig(h); };
    await s.start();
    tracker = s.tracker;
    feed = (b) => {
      const h = readHeader(b);
      handlers.conntrack(view.reset(b, h.count));
    };
    tick = async () => { clock.advance(1000); await new Promise((r) => setImmediate(r)); };
  } else {
    tracker = new Tracker();
    feed = (b) => {
      const h = readHeader(b);
      tracker.onConntrack(view.reset(b, h.count), Math.floor(simMs / 1000));
    };
  }
  let bi = 0;
  let sinceTick = 0;
  // --pollute MB: between batches, write MB of other memory, as serve's other work (the kernel's
  // packet path, the reader, the generator on the same cores) does in the 25 ms between two
  // batches; only the batches are timed then (wall clock).
  const junk = pollute > 0 ? new Int32Array((pollute * 1048576) / 4) : null;
  let fedNs = 0;
  const play = async (nBatches) => {
    for (let i = 0; i < nBatches; i++) {
      if (junk) {
        for (let j = 0; j < junk.length; j += 16) junk[j]++;
        const t0 = process.hrtime.bigint();
        feed(pool[bi]);
        fedNs += Number(process.hrtime.bigint() - t0);
      } else {
        feed(pool[bi]);
      }
      bi = (bi + 1) % pool.length;
      simMs += BATCH_MS;
      if ((sinceTick += BATCH_MS) >= 1000) {
        sinceTick = 0;
        await tick();
      }
    }
  };
  // Fill (the first cycle's DESTROYs name ids never seen) and warm up.
  await play(BATCHES_PER_CYCLE * 4);
  const recsPerRun = cycles * PORTS * 2;
  const wall = [];
  const cpu = [];
  for (let r = 0; r < runs; r++) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    fedNs = 0;
    await play(BATCHES_PER_CYCLE * cycles);
    const ns = junk ? fedNs : Number(process.hrtime.bigint() - t0);
    const c = process.cpuUsage(c0);
    wall.push(ns / recsPerRun);
    // With --pollute the process's CPU time includes the polluting: report the batches' wall time.
    cpu.push(junk ? ns / recsPerRun : ((c.user + c.system) * 1000) / recsPerRun);
  }
  const t = tracker.totals;
  return {
    wall: median(wall),
    cpu: median(cpu),
    liveFlows: tracker.liveFlows,
    keys: tracker.keys.count,
    unknownDestroys: t.unknownDestroys,
    news: t.news,
    destroys: t.destroys,
  };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

// ---------------------------------------------------------------- parent
function compile(srcRoot, out, streamer) {
  const entries = streamer ? ['streamer.ts', 'source/synthetic.ts', 'source/codec.ts', 'track/tracker.ts'] : ['source/codec.ts', 'track/tracker.ts'];
  execFileSync(join(root, 'node_modules/.bin/tsc'), [
    '--outDir', out, '--rootDir', srcRoot, '--module', 'nodenext', '--moduleResolution', 'nodenext',
    '--target', 'es2022', '--skipLibCheck', '--types', 'node', '--strict', '--ignoreConfig',
    ...entries.map((e) => join(srcRoot, e)),
  ], { stdio: 'inherit', cwd: root });
}

async function parent() {
  const streamer = argv.includes('--streamer');
  const children = Number(opt('--children', '5'));
  const runs = Number(opt('--runs', '5'));
  const cycles = Number(opt('--cycles', '4'));
  const prof = opt('--prof', null);
  const tmp = mkdtempSync(join(tmpdir(), 'nwb-steady-'));
  process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));
  const variants = [{ name: 'worktree', src: join(root, 'src') }];
  for (const ref of all('--ref')) {
    const dir = join(tmp, `ref-${variants.length}`);
    mkdirSync(dir);
    execFileSync('sh', ['-c', `git -C "$0" archive "$1" src package.json | tar -x -C "$2"`, root, ref, dir]);
    variants.unshift({ name: ref, src: join(dir, 'src') });
  }
  for (const v of variants) {
    v.out = join(tmp, `out-${v.name.replace(/[^\w.-]/g, '_')}`);
    compile(v.src, v.out, streamer);
    v.results = [];
  }
  console.log(`node ${process.version}; ${streamer ? 'Streamer handlers' : 'Tracker.onConntrack'}; ${CONN_PER_BATCH * 2} records/batch, ${PORTS} ports; ` +
    `${children} children per variant × ${runs} runs of ${cycles} cycles (${(cycles * PORTS * 2).toLocaleString('en-US')} records)` +
    (Number(opt('--pollute', '0')) > 0 ? `; ${opt('--pollute')} MB written between batches (batches timed alone, wall: the CPU column is wall too)` : ''));
  for (let c = 0; c < children; c++) {
    for (const v of variants) {
      const args = all('--node-arg');
      if (prof) args.push('--cpu-prof', '--cpu-prof-dir', prof, '--cpu-prof-name', `${v.name.replace(/[^\w.-]/g, '_')}-${c}.cpuprofile`);
      args.push(fileURLToPath(import.meta.url), '--child', v.out, '--runs', String(runs), '--cycles', String(cycles), '--ports', String(PORTS), '--pollute', opt('--pollute', '0'));
      if (streamer) args.push('--streamer');
      const r = JSON.parse(execFileSync(process.execPath, args, { encoding: 'utf8' }).trim().split('\n').at(-1));
      v.results.push(r);
      console.log(`  ${v.name.padEnd(10)} child ${c}: ${r.wall.toFixed(1)} ns/record wall, ${r.cpu.toFixed(1)} CPU; ${r.liveFlows} live flows, ${r.keys} key(s), ${r.unknownDestroys} unknown destroys`);
    }
  }
  console.log('variant     ns/record wall: median (min–max)   CPU: median (min–max)   ns/connection (wall, CPU)');
  for (const v of variants) {
    const w = v.results.map((r) => r.wall);
    const u = v.results.map((r) => r.cpu);
    const f = (x) => x.toFixed(1);
    console.log(`${v.name.padEnd(10)}  ${f(median(w))} (${f(Math.min(...w))}–${f(Math.max(...w)).padEnd(6)})          ${f(median(u))} (${f(Math.min(...u))}–${f(Math.max(...u))})          ${f(2 * median(w))}, ${f(2 * median(u))}`);
  }
  // Children of the same index ran back to back: their ratio is the steadiest comparison.
  const wt = variants.at(-1);
  for (const v of variants.slice(0, -1)) {
    const ratios = wt.results.map((r, i) => r.cpu / v.results[i].cpu);
    const faster = ratios.filter((x) => x < 1).length;
    console.log(`worktree / ${v.name}, CPU per record, child by child: median ${median(ratios).toFixed(3)} (${Math.min(...ratios).toFixed(3)}–${Math.max(...ratios).toFixed(3)}), faster in ${faster} of ${ratios.length}`);
  }
}

const ci = argv.indexOf('--child');
if (ci >= 0) {
  const r = await child(argv[ci + 1], argv.includes('--streamer'), Number(opt('--runs', '5')), Number(opt('--cycles', '4')), Number(opt('--pollute', '0')));
  console.log(JSON.stringify(r));
  process.exit(0);
} else {
  await parent();
}
