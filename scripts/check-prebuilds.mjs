#!/usr/bin/env node
// Checks every prebuilt addon in prebuilds/ (made by scripts/build-prebuilds.mjs) before it is
// packed, and fails on the first thing an old or small distribution would trip over:
//   - the set of files: exactly the targets build-prebuilds makes, named with the tags
//     node-gyp-build matches (a stray untagged .node would be picked on musl too);
//   - the ELF header (readelf -h): 64-bit little-endian shared object for the right machine;
//   - the symbol versions it needs (objdump -T): glibc builds nothing newer than GLIBC_2.28,
//     GLIBCXX_3.4.25 or CXXABI_1.3.11; the musl build no glibc version at all;
//   - the libraries it needs (readelf -d): libc and friends only, no libstdc++ for musl;
//   - it exports napi_register_module_v1 (what Node looks up).
// Then it loads what can be loaded here and compares each build's batch layout with this
// machine's: x64 glibc in this Node; with --arm64 the arm64 build in Debian's arm64 Node under
// qemu-user; with --musl the musl build through musl's own dynamic linker (every symbol must
// resolve except the napi_* and uv_* ones Node provides).
//
// Usage: node scripts/check-prebuilds.mjs [--arm64] [--musl] [--dir prebuilds]
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TARGETS } from './build-prebuilds.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The oldest distributions we promise (RHEL 8 / Debian 10: glibc 2.28, GCC 8's libstdc++). */
export const MAX_VERSIONS = { GLIBC: [2, 28], GLIBCXX: [3, 4, 25], CXXABI: [1, 3, 11] };

/** readelf -h's Machine line per target machine. */
const MACHINE = { 'x86-64': 'Advanced Micro Devices X86-64', aarch64: 'AArch64' };

const GLIBC_LIBS = /^(libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|librt\.so\.1|libgcc_s\.so\.1|libstdc\+\+\.so\.6|ld-linux-(x86-64|aarch64)\.so\.[12])$/;
const MUSL_LIBS = /^(libc\.so|libc\.musl-x86_64\.so\.1|ld-musl-x86_64\.so\.1)$/;

const cmp = (a, b) => {
  for (let i = 0; i < Math.max(a.length, b.length); i++) if ((a[i] ?? 0) !== (b[i] ?? 0)) return (a[i] ?? 0) - (b[i] ?? 0);
  return 0;
};

function run(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    throw new Error(`${cmd} ${args.join(' ')}: ${(err.stderr || err.message).toString().trim().split('\n')[0]}`);
  }
}

/** Problems with one prebuild's header, symbol versions, needed libraries and exports. */
export function inspect(file, target) {
  const problems = [];
  const header = run('readelf', ['-h', file]);
  const field = (name) => new RegExp(`^\\s*${name}:\\s*(.+)$`, 'm').exec(header)?.[1]?.trim() ?? '?';
  if (field('Class') !== 'ELF64') problems.push(`class ${field('Class')}, want ELF64`);
  if (!field('Data').includes('little endian')) problems.push(`data ${field('Data')}, want little endian`);
  if (!field('Type').startsWith('DYN')) problems.push(`type ${field('Type')}, want DYN (shared object)`);
  if (field('Machine') !== MACHINE[target.machine]) problems.push(`machine '${field('Machine')}', want '${MACHINE[target.machine]}'`);

  const dynsyms = run('objdump', ['-T', file]);
  const versions = new Set(dynsyms.match(/\b(GLIBC|GLIBCXX|CXXABI)_[0-9.]+\b/g) ?? []);
  const musl = target.file.includes('.musl.');
  for (const v of versions) {
    const [lib, num] = v.split('_');
    if (musl) problems.push(`needs ${v}: a musl build must not need glibc`);
    else if (cmp(num.split('.').map(Number), MAX_VERSIONS[lib]) > 0) problems.push(`needs ${v}, newer than ${lib}_${MAX_VERSIONS[lib].join('.')}`);
  }
  if (!/^\S+\s+g\s+DF\s+\.text\s+\S+\s+(\S+\s+)?napi_register_module_v1$/m.test(dynsyms)) problems.push('does not export napi_register_module_v1');

  const needed = [...run('readelf', ['-d', file]).matchAll(/\(NEEDED\)\s+Shared library: \[(.+)\]/g)].map((m) => m[1]);
  for (const lib of needed) if (!(musl ? MUSL_LIBS : GLIBC_LIBS).test(lib)) problems.push(`needs ${lib}, not a ${musl ? 'musl' : 'glibc'} system library`);
  const newest = [...versions].sort((a, b) => cmp(a.split('_')[1].split('.').map(Number), b.split('_')[1].split('.').map(Number))).filter((v) => v.startsWith('GLIBC_')).at(-1);
  return { problems, summary: `${field('Machine')}, needs ${needed.join(' ') || 'nothing'}${newest ? `, newest ${newest}` : ''}` };
}

/** The captured kernel datagrams (test/fixtures/*.hex) and the decoder each one feeds. */
function fixtures() {
  const dir = join(ROOT, 'test/fixtures');
  if (!existsSync(dir)) return [];
  const kind = (name) => (name.startsWith('ct-dump') ? 'dump' : name.startsWith('ct-') ? 'conntrack' : name.startsWith('nflog-') ? 'nflog' : name.startsWith('stats-') ? 'stats' : null);
  return readdirSync(dir)
    .filter((f) => f.endsWith('.hex') && kind(f))
    .sort()
    .map((f) => ({ kind: kind(f), hex: readFileSync(join(dir, f), 'utf8').split('\n').map((l) => l.replace(/#.*$/, '').replace(/^[0-9a-f]+:/i, '')).join('').replace(/\s+/g, '') }));
}

/**
 * Loads the addon and answers with its batch layout and a digest of what its decoders make
 * of every fixture (timestamps fixed): equal across builds means the cross-compiled decoders
 * read the kernel's bytes exactly as this machine's build does.
 */
const LOAD_SNIPPET = (file) =>
  `const a = require(${JSON.stringify(file)}); if (typeof a.Source !== 'function') throw new Error('no Source'); ` +
  `const h = require('crypto').createHash('sha256'); ` +
  `for (const f of ${JSON.stringify(fixtures())}) h.update(a.decodeForTest(f.kind, Buffer.from(f.hex, 'hex'), 1700000000000)); ` +
  `process.stdout.write(JSON.stringify({ layout: a.layout, decoded: h.digest('hex') }));`;

/**
 * Debian 12's arm64 Node and its libraries, unpacked into a directory that qemu-user uses as
 * the root for the program's file lookups. APT runs with its own sources (Debian bookworm,
 * whatever distribution this is), lists and cache under `dir`: nothing on the machine changes.
 * Needs network, apt-get, dpkg-deb and Debian's archive keyring. Cached across runs.
 */
export function arm64NodeRoot(dir = join(tmpdir(), 'natwatch-arm64-node')) {
  const root = join(dir, 'root');
  if (existsSync(join(root, 'usr/bin/node'))) return root;
  const keyring = '/usr/share/keyrings/debian-archive-keyring.gpg';
  if (!existsSync(keyring)) throw new Error(`${keyring} missing (apt-get install debian-archive-keyring)`);
  for (const d of ['lists/partial', 'cache/archives/partial', 'debs', 'root', 'parts']) mkdirSync(join(dir, d), { recursive: true });
  writeFileSync(join(dir, 'sources.list'), `deb [arch=arm64 signed-by=${keyring}] http://deb.debian.org/debian bookworm main\n`);
  writeFileSync(join(dir, 'apt.conf'), [
    'APT::Architectures { "arm64"; };',
    'APT::Architecture "arm64";',
    `Dir::Etc::sourcelist "${join(dir, 'sources.list')}";`,
    `Dir::Etc::sourceparts "${join(dir, 'parts')}";`,
    `Dir::State::Lists "${join(dir, 'lists')}";`,
    'Dir::State::status "/dev/null";',
    `Dir::Cache "${join(dir, 'cache')}";`,
    'Debug::NoLocking "true";',
    'APT::Sandbox::User "root";',
    '',
  ].join('\n'));
  const opts = { cwd: join(dir, 'debs'), env: { ...process.env, APT_CONFIG: join(dir, 'apt.conf') }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] };
  const apt = (cmd, args) => {
    try {
      return execFileSync(cmd, args, opts);
    } catch (err) {
      throw new Error(`${cmd} ${args.slice(0, 2).join(' ')}: ${String(err.stderr || err.message).trim().split('\n').at(-1)}`);
    }
  };
  apt('apt-get', ['-qq', 'update']);
  const deps = apt('apt-cache', ['depends', '--recurse', '--no-recommends', '--no-suggests', '--no-conflicts', '--no-breaks', '--no-replaces', '--no-enhances', 'nodejs'])
    .split('\n')
    .filter((l) => /^[a-z0-9]/.test(l))
    .map((l) => l.trim());
  apt('apt-get', ['-qq', 'download', ...new Set(deps)]);
  for (const deb of readdirSync(join(dir, 'debs')).filter((f) => f.endsWith('.deb'))) run('dpkg-deb', ['-x', join(dir, 'debs', deb), root]);
  return root;
}

function loadArm64(file) {
  const root = arm64NodeRoot();
  const r = spawnSync('qemu-aarch64-static', [join(root, 'usr/bin/node'), '-e', LOAD_SNIPPET(file)], {
    encoding: 'utf8',
    env: { ...process.env, QEMU_LD_PREFIX: root },
    timeout: 120_000,
  });
  if (r.status !== 0) throw new Error(`arm64 node under qemu: ${(r.stderr || r.error?.message || '').trim().split('\n').at(-1)}`);
  const version = spawnSync('qemu-aarch64-static', [join(root, 'usr/bin/node'), '-p', 'process.arch + " " + process.version'], { encoding: 'utf8', env: { ...process.env, QEMU_LD_PREFIX: root } }).stdout.trim();
  return { answer: JSON.parse(r.stdout), by: `Debian's node ${version} under qemu-aarch64-static` };
}

/**
 * musl's dynamic linker in list mode (its ldd) maps the library and resolves every symbol;
 * only what the node executable itself exports may stay unresolved: N-API (napi_*, node_api_*)
 * and libuv (uv_*: the kernel-change watcher polls its socket on Node's loop).
 */
function loadMusl(file) {
  const ld = ['/lib/ld-musl-x86_64.so.1', '/usr/lib/x86_64-linux-musl/libc.so'].find(existsSync);
  if (!ld) throw new Error("musl's dynamic linker not found (apt-get install musl)");
  const r = spawnSync(ld, ['--list', file], { encoding: 'utf8' });
  const unresolved = [...`${r.stdout}${r.stderr}`.matchAll(/Error relocating [^:]+: (\S+): symbol not found/g)].map((m) => m[1]);
  const foreign = unresolved.filter((s) => !/^(napi|node_api|uv)_/.test(s));
  if (foreign.length) throw new Error(`musl cannot resolve ${foreign.join(', ')}`);
  if (!/Error relocating/.test(r.stderr + r.stdout) && r.status !== 0) throw new Error(`${ld} --list: ${r.stderr.trim()}`);
  return { by: `${ld} --list: every symbol resolves but the ${unresolved.length} napi_*/uv_* ones Node provides` };
}

function main(argv) {
  const opts = { arm64: false, musl: false, dir: join(ROOT, 'prebuilds') };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--arm64') opts.arm64 = true;
    else if (argv[i] === '--musl') opts.musl = true;
    else if (argv[i] === '--dir' && argv[i + 1]) opts.dir = argv[++i];
    else {
      process.stderr.write(`check-prebuilds: unknown argument '${argv[i]}' (usage: check-prebuilds.mjs [--arm64] [--musl] [--dir DIR])\n`);
      process.exit(2);
    }
  }
  const failures = [];
  const say = (ok, what, line) => {
    process.stdout.write(`${ok ? 'ok  ' : 'FAIL'} ${what}: ${line}\n`);
    if (!ok) failures.push(`${what}: ${line}`);
  };
  const expected = new Set(TARGETS.map((t) => join(t.dir, t.file)));
  const present = existsSync(opts.dir)
    ? readdirSync(opts.dir, { recursive: true }).filter((f) => String(f).endsWith('.node')).map(String)
    : [];
  for (const f of present) if (!expected.has(f)) say(false, f, `not a file build-prebuilds makes (expected ${[...expected].join(', ')})`);

  // This machine's own build (node-gyp, system compiler) is the reference, when there is one.
  const reference = (() => {
    const file = join(ROOT, 'build/Release/natwatch.node');
    if (!existsSync(file)) return null;
    const r = spawnSync(process.execPath, ['-e', LOAD_SNIPPET(file)], { encoding: 'utf8' });
    return r.status === 0 ? JSON.parse(r.stdout) : null;
  })();
  const sameAsReference = (what, answer) => {
    if (!reference) return;
    const a = JSON.stringify(answer.layout);
    const b = JSON.stringify(reference.layout);
    if (a !== b) say(false, what, `batch layout differs from build/Release's: ${a} vs ${b}`);
    else if (answer.decoded !== reference.decoded) say(false, what, `decodes the fixtures differently from build/Release (${answer.decoded} vs ${reference.decoded})`);
    else say(true, what, `same batch layout and fixture decoding as build/Release`);
  };

  for (const t of TARGETS) {
    const rel = join(t.dir, t.file);
    const file = join(opts.dir, rel);
    if (!existsSync(file)) {
      say(false, rel, 'missing (run node scripts/build-prebuilds.mjs)');
      continue;
    }
    try {
      const { problems, summary } = inspect(file, t);
      say(problems.length === 0, rel, problems.length ? problems.join('; ') : summary);
      if (problems.length) continue;
      if (t.name === `linux-${process.arch}-glibc`) {
        const r = spawnSync(process.execPath, ['-e', LOAD_SNIPPET(file)], { encoding: 'utf8' });
        if (r.status !== 0) say(false, rel, `does not load in this node: ${r.stderr.trim().split('\n').at(-1)}`);
        else {
          say(true, rel, `loads in node ${process.version}`);
          sameAsReference(rel, JSON.parse(r.stdout));
        }
      } else if (t.name === 'linux-arm64-glibc' && opts.arm64) {
        const r = loadArm64(file);
        say(true, rel, `loads in ${r.by}`);
        sameAsReference(rel, r.answer);
      } else if (t.name === 'linux-x64-musl' && opts.musl) {
        say(true, rel, loadMusl(file).by);
      }
    } catch (err) {
      say(false, rel, err.message);
    }
  }
  if (failures.length) {
    process.stderr.write(`check-prebuilds: ${failures.length} problem(s) in ${relative(process.cwd(), opts.dir) || '.'}\n`);
    process.exit(1);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) main(process.argv.slice(2));
