// scripts/check-prebuilds.mjs must fail on exactly what breaks users: a build that needs a newer
// glibc/libstdc++ than RHEL 8 has, a build for the wrong machine, a stray file node-gyp-build
// could pick on the wrong libc. The system compiler's build/Release addon (this machine's glibc
// 2.36, GLIBCXX_3.4.29) stands in for the first two.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli-build.js';

const SCRIPT = join(ROOT, 'scripts/check-prebuilds.mjs');
const NATIVE = join(ROOT, 'build/Release/natwatch.node');

describe.runIf(existsSync(NATIVE))('check-prebuilds', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nwcheck-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('fails a too-new glibc build, a wrong machine, a missing musl build and a stray untagged file, naming each', () => {
    for (const d of ['linux-x64', 'linux-arm64']) mkdirSync(join(dir, d), { recursive: true });
    copyFileSync(NATIVE, join(dir, 'linux-x64/natwatch.napi.glibc.node'));
    copyFileSync(NATIVE, join(dir, 'linux-arm64/natwatch.napi.glibc.node'));
    copyFileSync(NATIVE, join(dir, 'linux-x64/natwatch.node'));
    const r = spawnSync(process.execPath, [SCRIPT, '--dir', dir], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    const out = r.stdout;
    expect(out).toMatch(/^FAIL linux-x64\/natwatch\.node: not a file build-prebuilds makes/m);
    expect(out).toMatch(/^FAIL linux-x64\/natwatch\.napi\.glibc\.node: .*needs GLIBC_2\.(29|3\d), newer than GLIBC_2\.28/m);
    expect(out).toMatch(/^FAIL linux-x64\/natwatch\.napi\.glibc\.node: .*needs GLIBCXX_3\.4\.(2[6-9]|3\d), newer than GLIBCXX_3\.4\.25/m);
    expect(out).toMatch(/^FAIL linux-arm64\/natwatch\.napi\.glibc\.node: .*machine 'Advanced Micro Devices X86-64', want 'AArch64'/m);
    expect(out).toMatch(/^FAIL linux-x64\/natwatch\.napi\.musl\.node: missing/m);
  });
});

// The names build-prebuilds gives its files must make node-gyp-build (the package's own loader,
// read from node_modules) pick the right one: the musl build only on musl, never the glibc one
// there, and the arm64 build on arm64. Empty files: the choice is made on names alone.
describe('node-gyp-build picks each prebuild on its own platform only', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nwpick-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const pick = async (env: Record<string, string>): Promise<string> => {
    const { TARGETS } = (await import(join(ROOT, 'scripts/build-prebuilds.mjs'))) as { TARGETS: { dir: string; file: string }[] };
    writeFileSync(join(dir, 'package.json'), '{"name":"natwatch"}');
    for (const t of TARGETS) {
      mkdirSync(join(dir, 'prebuilds', t.dir), { recursive: true });
      writeFileSync(join(dir, 'prebuilds', t.dir, t.file), '');
    }
    const r = spawnSync(process.execPath, ['-e', `process.stdout.write(require(${JSON.stringify(join(ROOT, 'node_modules/node-gyp-build'))}).path(${JSON.stringify(dir)}))`], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH, PREBUILDS_ONLY: '1', ...env },
    });
    if (r.status !== 0) return `error: ${r.stderr.split('\n').find((l) => l.startsWith('Error: No native build')) ?? r.stderr}`;
    return r.stdout.slice(dir.length + 1);
  };

  it('glibc x64, musl x64, glibc arm64; nothing for musl arm64 (it builds from source)', async () => {
    expect(await pick({ LIBC: 'glibc', npm_config_arch: 'x64' })).toBe('prebuilds/linux-x64/natwatch.napi.glibc.node');
    expect(await pick({ LIBC: 'musl', npm_config_arch: 'x64' })).toBe('prebuilds/linux-x64/natwatch.napi.musl.node');
    expect(await pick({ LIBC: 'glibc', npm_config_arch: 'arm64' })).toBe('prebuilds/linux-arm64/natwatch.napi.glibc.node');
    expect(await pick({ LIBC: 'musl', npm_config_arch: 'arm64' })).toMatch(/^error: Error: No native build was found for platform=linux arch=arm64 .*libc=musl/);
  });
});
