// The package as a user gets it. `npm pack` runs twice, from two copies of the checkout at two
// different paths, and must give the same bytes. The tarball holds what runtime needs and
// nothing pointing at a file it lacks. Installed into an empty project with install scripts held
// back (as npm 11 does by default), it loads its prebuilt addon and runs `natwatch doctor` with
// no compiler on PATH. Then it runs the way deploy/systemd/natwatch.service runs it: not uid 0,
// CAP_NET_ADMIN alone, no_new_privs (and with the --netns drop-in's CAP_SYS_ADMIN).
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, normalize } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli-build.js';
import { describeLive } from '../helpers/gate.js';
import { freePort } from '../helpers/serve.js';

const PACK_MS = 20 * 60_000; // a cold zig cache builds libc++ for three targets first
const work = mkdtempSync(join(tmpdir(), 'nwpkg-'));
chmodSync(work, 0o755); // the service test runs natwatch as uid 65534 from here

/**
 * Copies of what git tracks (plus new, unignored files) at `dests`, all taken from one read of
 * the checkout (an edit during the test cannot make them differ), sharing its node_modules.
 */
function copyCheckout(dests: string[]): void {
  const files = execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT, encoding: 'utf8' })
    .split('\0')
    .filter((f) => f && existsSync(join(ROOT, f)));
  for (const f of files) {
    const data = readFileSync(join(ROOT, f));
    const mode = statSync(join(ROOT, f)).mode & 0o777;
    for (const to of dests) {
      mkdirSync(dirname(join(to, f)), { recursive: true });
      writeFileSync(join(to, f), data, { mode });
    }
  }
  for (const to of dests) symlinkSync(join(ROOT, 'node_modules'), join(to, 'node_modules'));
}

/** The npm environment vitest inherited from `npm test` would steer the nested npm; drop it. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k)) env[k] = v;
  return { ...env, ...extra };
}

function pack(name: string): { tarball: string; sha256: string } {
  const src = join(work, name);
  const out = join(work, `${name}-out`);
  mkdirSync(out, { recursive: true });
  execFileSync('npm', ['pack', '--pack-destination', out, '--loglevel', 'error'], { cwd: src, env: cleanEnv(), stdio: 'pipe', timeout: PACK_MS });
  const file = readdirSync(out).find((f) => f.endsWith('.tgz'));
  if (!file) throw new Error(`npm pack left no tarball in ${out}`);
  const tarball = join(out, file);
  return { tarball, sha256: createHash('sha256').update(readFileSync(tarball)).digest('hex') };
}

/** Entries whose content differs between two tarballs (or that only one has). */
function differingFiles(x: string, y: string): string[] {
  const digest = (t: string) => {
    const dir = mkdtempSync(join(work, 'cmp-'));
    execFileSync('tar', ['-xzf', t, '-C', dir]);
    const files = execFileSync('find', ['.', '-type', 'f'], { cwd: dir, encoding: 'utf8' }).split('\n').filter(Boolean);
    return new Map(files.map((f) => [f, createHash('sha256').update(readFileSync(join(dir, f))).digest('hex')]));
  };
  const dx = digest(x);
  const dy = digest(y);
  return [...new Set([...dx.keys(), ...dy.keys()])].filter((f) => dx.get(f) !== dy.get(f)).sort();
}

/** A PATH with every program of the usual directories except compilers, make and python. */
const COMPILER = /^(cc|c\+\+|cpp|c89|c99|gcc|g\+\+|clang|clang\+\+|ld|ld\.\w+|make|gmake|cmake|python\d*(\.\d+)?|zig|tcc|node-gyp)(-\d+)?$|-(gcc|g\+\+|cc|c\+\+|ld)(-\d+)?$/;
const NO_COMPILER_TOOLS = ['cc', 'c++', 'gcc', 'g++', 'make', 'python3', 'clang'];
function pathWithoutCompilers(): string {
  const bin = join(work, 'bin');
  mkdirSync(bin, { recursive: true });
  for (const dir of ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin']) {
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir)) {
      if (COMPILER.test(name) || existsSync(join(bin, name))) continue;
      symlinkSync(join(dir, name), join(bin, name));
    }
  }
  return bin;
}

let a: { tarball: string; sha256: string };
let b: { tarball: string; sha256: string };
let listing: string[];
let project: string;

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

/** What every suite here needs; one set, so they run or skip together (they build on each other). */
const NEEDS = { root: true, tools: ['ip', 'setpriv', 'npm', 'git', 'tar', 'readelf', 'objdump'] };

describeLive('npm pack', () => {
  beforeAll(() => {
    // Another path length too: nothing of the checkout's path may end up inside.
    copyCheckout([join(work, 'a'), join(work, 'bb')]);
    a = pack('a');
    b = pack('bb');
    listing = execFileSync('tar', ['-tzf', a.tarball], { encoding: 'utf8' }).split('\n').filter(Boolean).map((f) => f.replace(/^package\//, ''));
    rmSync(join(work, 'a'), { recursive: true, force: true });
    rmSync(join(work, 'bb'), { recursive: true, force: true });
  }, 2 * PACK_MS);

  it('is reproducible: two packs from two paths give the same bytes', () => {
    // On a mismatch, name the files that differ first.
    if (b.sha256 !== a.sha256) expect(differingFiles(a.tarball, b.tarball)).toEqual([]);
    expect(b.sha256).toBe(a.sha256);
  });

  it('ships what runtime needs: CLI, library with types, lab peer, the three prebuilds, the unit, LICENSE', () => {
    for (const f of [
      'package.json', 'LICENSE', 'README.md', 'bin/natwatch.js', 'dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'lab/peer.mjs',
      'prebuilds/linux-x64/natwatch.napi.glibc.node', 'prebuilds/linux-arm64/natwatch.napi.glibc.node', 'prebuilds/linux-x64/natwatch.napi.musl.node',
      'binding.gyp', 'native/addon.cc', 'deploy/systemd/natwatch.service', 'deploy/systemd/netns.conf', 'docs/deploy.md',
    ]) expect(listing, f).toContain(f);
  });

  it('ships no sources, tests, build scripts, source maps or stray native builds', () => {
    const stray = listing.filter((f) => /^(src|test|scripts|build|node_modules|\.ci)\//.test(f) || /\.map$|^tsconfig|\.tsbuildinfo$/.test(f) || (f.endsWith('.node') && !f.startsWith('prebuilds/')));
    expect(stray).toEqual([]);
  });

  it('no shipped file points at a file it does not ship (imports, URLs, markdown links, source maps)', () => {
    const dir = join(work, 'unpacked');
    mkdirSync(dir, { recursive: true });
    execFileSync('tar', ['-xzf', a.tarball, '-C', dir]);
    const root = join(dir, 'package');
    const shipped = new Set(listing.map((f) => normalize(f)));
    const dirs = new Set([...shipped].flatMap((f) => f.split('/').slice(0, -1).map((_, i, p) => p.slice(0, i + 1).join('/'))));
    const dangling: string[] = [];
    for (const f of listing) {
      const text = /\.(js|mjs|cjs|ts|md|json)$/.test(f) ? readFileSync(join(root, f), 'utf8') : '';
      if (/sourceMappingURL=/.test(text)) dangling.push(`${f}: sourceMappingURL`);
      const refs = [
        ...text.matchAll(/(?:from\s*|import\s*\(\s*|require\(\s*)['"](\.{1,2}\/[^'"]*)['"]/g),
        ...text.matchAll(/new URL\(\s*['"](\.{1,2}\/[^'"]*)['"]\s*,\s*import\.meta\.url/g),
        ...(f.endsWith('.md') ? text.matchAll(/\]\((?!https?:|mailto:|#)([^)#\s]+)/g) : []),
      ].map((m) => m[1]!);
      for (const ref of refs) {
        const target = normalize(join(dirname(f), ref)).replace(/\/$/, '');
        if (target !== '.' && !shipped.has(target) && !dirs.has(target)) dangling.push(`${f} -> ${ref}`);
      }
    }
    expect(dangling).toEqual([]);
  });

  it('says what it is: MIT LICENSE file, repository, bugs and homepage', () => {
    const pkg = JSON.parse(execFileSync('tar', ['-xzOf', a.tarball, 'package/package.json'], { encoding: 'utf8' }));
    expect(pkg.license).toBe('MIT');
    expect(pkg.repository.url).toMatch(/github\.com\/natwatch\/natwatch/);
    expect(pkg.bugs.url).toMatch(/^https:\/\//);
    expect(pkg.homepage).toMatch(/^https:\/\//);
    expect(execFileSync('tar', ['-xzOf', a.tarball, 'package/LICENSE'], { encoding: 'utf8' })).toMatch(/^MIT License\n/);
    const entryPoints = [pkg.main, pkg.types, ...Object.values(pkg.bin as Record<string, string>), pkg.exports['.'].import, pkg.exports['.'].types];
    for (const p of entryPoints) expect(listing, p).toContain(normalize(p));
  });
}, NEEDS);

describeLive('the packed tarball in an empty project, install scripts held back, no compiler', () => {
  let path: string;
  beforeAll(() => {
    project = join(work, 'project');
    mkdirSync(project, { recursive: true });
    writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'empty', version: '1.0.0', private: true }));
    execFileSync('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel', 'error', a.tarball], {
      cwd: project, env: cleanEnv(), stdio: 'pipe', timeout: 300_000,
    });
    execFileSync('chmod', ['-R', 'a+rX', work]);
    path = pathWithoutCompilers();
  }, 320_000);

  it('installed without compiling anything, and PATH really lacks every compiler', () => {
    expect(existsSync(join(project, 'node_modules/natwatch/build'))).toBe(false);
    for (const t of NO_COMPILER_TOOLS) expect(existsSync(join(path, t)), t).toBe(false);
  });

  it('natwatch doctor runs from the prebuilt addon (exit 0, a JSON report)', () => {
    const r = spawnSync(join(project, 'node_modules/.bin/natwatch'), ['doctor', '--json'], {
      cwd: project, env: { PATH: path, HOME: project }, encoding: 'utf8', timeout: 60_000,
    });
    expect(r.stderr).not.toMatch(/native addon not built|No native build/);
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(Array.isArray(report.checks) && report.checks.length).toBeGreaterThan(0);
  });

  it('the library loads and names its streamer factory', () => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', "import('natwatch').then((m) => process.stdout.write(typeof m.createStreamer))"], {
      cwd: project, env: { PATH: path }, encoding: 'utf8',
    });
    expect(r.stdout, r.stderr).toBe('function');
  });
}, NEEDS);

/** The unit's own lines, so the emulation below follows the file rather than a copy of it. */
function unitCaps(file: string): string[] {
  const text = readFileSync(join(ROOT, 'deploy/systemd', file), 'utf8');
  const ambient = /^AmbientCapabilities=(.+)$/m.exec(text)?.[1]?.split(/\s+/) ?? [];
  const bounding = /^CapabilityBoundingSet=(.+)$/m.exec(text)?.[1]?.split(/\s+/) ?? [];
  expect(bounding.sort()).toEqual([...ambient].sort());
  return ambient.map((c) => c.replace(/^CAP_/, '').toLowerCase());
}

async function serveAsUnit(caps: string[], args: string[]): Promise<{ child: ChildProcess; url: string; out: () => string }> {
  const port = await freePort();
  const set = `-all,${caps.map((c) => `+${c}`).join(',')}`;
  const child = spawn('setpriv', [
    '--reuid=65534', '--regid=65534', '--clear-groups', '--no-new-privs',
    `--inh-caps=${set}`, `--ambient-caps=${set}`, `--bounding-set=${set}`, '--',
    process.execPath, join(project, 'node_modules/natwatch/bin/natwatch.js'), 'serve', '--listen', `127.0.0.1:${port}`, ...args,
  ], { cwd: work, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', NATWATCH_LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  return { child, url: `http://127.0.0.1:${port}`, out: () => out };
}

async function healthy(url: string, child: ChildProcess, out: () => string): Promise<string> {
  const deadline = Date.now() + 20_000;
  while (Date.now() < deadline && child.exitCode === null) {
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1_000) });
      const body = await res.text();
      if (res.ok) return body;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`serve never became healthy (exit ${child.exitCode}):\n${out()}`);
}

function stop(child: ChildProcess | undefined): void {
  if (child?.pid !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
}

describeLive('as deploy/systemd/natwatch.service runs it (emulated with setpriv: systemd is not PID 1 here)', () => {
  let child: ChildProcess | undefined;
  let ns: string | undefined;
  afterAll(() => {
    stop(child);
    if (ns) spawnSync('ip', ['netns', 'del', ns]);
  });

  it('uid 65534 with CAP_NET_ADMIN only: healthy, and reads its namespace\'s conntrack limit', async () => {
    const caps = unitCaps('natwatch.service');
    expect(caps).toEqual(['net_admin']);
    const s = await serveAsUnit(caps, []);
    child = s.child;
    expect(JSON.parse(await healthy(s.url, s.child, s.out)).status).toBe('ok');
    const metrics = await (await fetch(`${s.url}/metrics`)).text();
    const max = readFileSync('/proc/sys/net/netfilter/nf_conntrack_max', 'utf8').trim();
    expect(metrics).toMatch(new RegExp(`^natwatch_conntrack_(max|entries_limit)(\\{[^}]*\\})? ${max}$`, 'm'));
    stop(child);
  });

  it('the --netns drop-in (CAP_SYS_ADMIN added): healthy watching another namespace', async () => {
    const caps = unitCaps('netns.conf');
    expect(caps.sort()).toEqual(['net_admin', 'sys_admin']);
    ns = `nwpkg-${randomBytes(4).toString('hex')}`;
    execFileSync('ip', ['netns', 'add', ns]);
    const s = await serveAsUnit(caps, ['--netns', ns]);
    child = s.child;
    const health = JSON.parse(await healthy(s.url, s.child, s.out));
    expect(health.status).toBe('ok');
    stop(child);
  });
}, NEEDS);
