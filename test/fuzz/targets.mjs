#!/usr/bin/env node
// The fuzz targets, how to build them and their seed inputs, in one place for scripts/fuzz.sh
// and test/unit/fuzz-replay.test.ts.
//   node test/fuzz/targets.mjs list
//   node test/fuzz/targets.mjs build fuzz|coverage|replay OUTDIR [TARGET...]
//   node test/fuzz/targets.mjs seeds OUTDIR [TARGET...]   (OUTDIR/TARGET/<fixture>.bin)
// Modes: fuzz = libFuzzer + ASan + UBSan (clang); coverage = libFuzzer + clang source-based
// coverage, no sanitizers; replay = ASan + UBSan with standalone-main.cc (any compiler).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURES = join(ROOT, 'test/fixtures');

// Both decoders: records.cc (the append path) links against both.
const DECODERS = ['native/ct-decoder.cc', 'native/nflog-decoder.cc', 'native/records.cc'];
// ipt-legacy.cc holds DecodeIptEntries (and the getsockopt reader, which the targets never call).
const FACTS = ['native/nft-decoder.cc', 'native/xt-decoder.cc', 'native/ipt-legacy.cc', 'native/rtnl-decoder.cc', 'native/diag-decoder.cc'];

/**
 * name → its source, the native files it links, the fixtures that seed it (by file-name
 * prefix), the decoder files whose coverage BENCHMARKS.md reports, and netlink: false for
 * inputs that are not netlink messages.
 */
export const TARGETS = {
  ct: { source: 'test/fuzz/fuzz-ct.cc', links: DECODERS, seeds: ['ct-'], covers: ['native/ct-decoder.cc', 'native/records.cc'] },
  nflog: { source: 'test/fuzz/fuzz-nflog.cc', links: DECODERS, seeds: ['nflog-'], covers: ['native/nflog-decoder.cc', 'native/records.cc'] },
  stats: { source: 'test/fuzz/fuzz-stats.cc', links: ['native/ct-decoder.cc'], seeds: ['stats-'], covers: ['native/ct-decoder.cc'] },
  // Kernel facts (facts-writer.h): plain functions over kernel bytes, seeded from the bytes
  // kernelFacts({raw: true}) captured (test/fixtures/facts-raw-*.hex).
  nft: { source: 'test/fuzz/fuzz-nft.cc', links: FACTS, seeds: ['facts-raw-nft'], covers: ['native/nft-decoder.cc', 'native/xt-decoder.cc'] },
  xt: { source: 'test/fuzz/fuzz-xt.cc', links: FACTS, seeds: ['facts-raw-ipt-legacy', 'facts-raw-ip6t-legacy'], netlink: false, covers: ['native/ipt-legacy.cc', 'native/xt-decoder.cc'] },
  rtnl: { source: 'test/fuzz/fuzz-rtnl.cc', links: FACTS, seeds: ['facts-raw-rtnl'], covers: ['native/rtnl-decoder.cc'] },
  diag: { source: 'test/fuzz/fuzz-diag.cc', links: FACTS, seeds: ['facts-raw-diag-'], covers: ['native/diag-decoder.cc'] },
};

/** Bytes of an annotated hex fixture (the format scripts/capture-fixtures.mjs writes). */
export function fixtureBytes(path) {
  const hex = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const body = line.replace(/#.*$/, '').replace(/^\s*[0-9a-f]+:/, '').trim();
    if (body) hex.push(...body.split(/\s+/));
  }
  return Buffer.from(hex.join(''), 'hex');
}

/** The netlink messages of a datagram (or of captured replies back to back), each whole. */
function netlinkMessages(b) {
  const out = [];
  for (let off = 0; off + 16 <= b.length;) {
    const len = b.readUInt32LE(off);
    if (len < 16 || off + len > b.length) break;
    out.push(b.subarray(off, off + len));
    off += (len + 3) & ~3;
  }
  return out;
}

/**
 * Writes the target's seed fixtures as binary files into dir, and for netlink targets each
 * message of a fixture with several as a seed of its own too (small inputs fuzz faster);
 * returns their paths.
 */
export function writeSeeds(name, dir) {
  mkdirSync(dir, { recursive: true });
  const t = TARGETS[name];
  const out = [];
  const put = (file, bytes) => {
    const p = join(dir, file);
    writeFileSync(p, bytes);
    out.push(p);
  };
  for (const f of readdirSync(FIXTURES).sort()) {
    if (!f.endsWith('.hex') || !t.seeds.some((p) => f.startsWith(p))) continue;
    const bytes = fixtureBytes(join(FIXTURES, f));
    const base = f.replace(/\.hex$/, '');
    put(`${base}.bin`, bytes);
    const msgs = t.netlink === false ? [] : netlinkMessages(bytes);
    if (msgs.length > 1) msgs.forEach((m, i) => put(`${base}.${i}.bin`, m));
  }
  return out;
}

/** Committed inputs: the minimized corpus and the reproducers of findings (each must run clean). */
export const corpusDir = (name) => join(ROOT, 'test/fuzz/corpus', name);
export const crashDir = (name) => join(ROOT, 'test/fuzz/crashes', name);

function works(cxx, flags) {
  const dir = mkdtempSync(join(tmpdir(), 'nw-cxx-'));
  try {
    const src = join(dir, 't.cc');
    writeFileSync(src, 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n');
    execFileSync(cxx, [...flags, src, '-o', join(dir, 't')], { stdio: 'ignore', timeout: 60_000 });
    return true;
  } catch {
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

let found;
/** { clang, replayCxx }: a clang++ that links libFuzzer (or null), and a compiler for replay builds. */
export function compilers() {
  if (found) return found;
  const clang = ['clang++-14', 'clang++'].find((c) => works(c, ['-fsanitize=fuzzer,address,undefined'])) ?? null;
  const replayCxx = clang ?? ['g++', 'c++'].find((c) => works(c, ['-fsanitize=address,undefined', '-c'])) ?? null;
  found = { clang, replayCxx };
  return found;
}

/** The llvm-profdata / llvm-cov that match the clang found (Debian's llvm-14). */
export function llvmTool(tool) {
  for (const c of [`${tool}-14`, tool]) {
    try {
      execFileSync(c, ['--version'], { stdio: 'ignore' });
      return c;
    } catch { /* next */ }
  }
  return null;
}

const COMMON = ['-std=c++17', '-g', '-fno-exceptions', `-I${join(ROOT, 'native')}`, `-I${join(ROOT, 'test/fuzz')}`];
// _GLIBCXX_SANITIZE_VECTOR: ASan also sees accesses between a std::vector's size and capacity.
const SANITIZE = ['-fsanitize=address,undefined', '-fno-sanitize-recover=all', '-D_GLIBCXX_SANITIZE_VECTOR'];

/** Builds target name in mode into outDir; returns the binary's path. */
export function build(name, mode, outDir) {
  const t = TARGETS[name];
  if (!t) throw new Error(`unknown fuzz target ${name} (known: ${Object.keys(TARGETS).join(', ')})`);
  const { clang, replayCxx } = compilers();
  let cxx;
  let flags;
  let extra = [];
  if (mode === 'fuzz') {
    cxx = clang;
    flags = ['-O1', '-fsanitize=fuzzer', ...SANITIZE];
  } else if (mode === 'coverage') {
    cxx = clang;
    flags = ['-O1', '-fsanitize=fuzzer', '-fprofile-instr-generate', '-fcoverage-mapping'];
  } else if (mode === 'replay') {
    cxx = replayCxx;
    flags = ['-O1', ...SANITIZE];
    extra = [join(ROOT, 'test/fuzz/standalone-main.cc')];
  } else {
    throw new Error(`unknown build mode ${mode}`);
  }
  if (!cxx) throw new Error(`no compiler for ${mode} builds (install clang and libclang-rt-14-dev)`);
  mkdirSync(join(outDir, `obj-${mode}`), { recursive: true });
  const cc = (args) => execFileSync(cxx, [...COMMON, ...flags, ...args], { stdio: ['ignore', 'ignore', 'inherit'], timeout: 180_000 });
  // The decoders are shared by several targets: each compiled once per process, mode and outDir.
  const objs = [...t.links, ...extra].map((src) => {
    const obj = join(outDir, `obj-${mode}`, `${src.replace(/^.*\//, '')}.o`);
    const key = `${obj}:${src}`;
    if (!compiled.has(key)) {
      cc(['-c', src.startsWith('/') ? src : join(ROOT, src), '-o', obj]);
      compiled.add(key);
    }
    return obj;
  });
  const out = join(outDir, `fuzz-${name}${mode === 'fuzz' ? '' : `-${mode}`}`);
  cc([join(ROOT, t.source), ...objs, '-o', out]);
  return out;
}
const compiled = new Set();

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [cmd, ...rest] = process.argv.slice(2);
  const names = (args) => (args.length ? args : Object.keys(TARGETS));
  if (cmd === 'list') {
    console.log(Object.keys(TARGETS).join('\n'));
  } else if (cmd === 'build' && rest.length >= 2) {
    for (const n of names(rest.slice(2))) console.log(build(n, rest[0], rest[1]));
  } else if (cmd === 'seeds' && rest.length >= 1) {
    for (const n of names(rest.slice(1))) writeSeeds(n, join(rest[0], n));
  } else if (cmd === 'covers' && rest.length === 1) {
    console.log(TARGETS[rest[0]].covers.map((f) => join(ROOT, f)).join('\n'));
  } else {
    console.error('usage: targets.mjs list | build fuzz|coverage|replay OUTDIR [TARGET...] | seeds OUTDIR [TARGET...] | covers TARGET');
    process.exit(2);
  }
}
