// Process lifetime around a started native source: ref'd by default (a CLI waiting on events
// stays up), unref() lets Node exit, close() joins the reader, process.exit() with a running
// reader thread tears down cleanly.
import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeLive } from '../helpers/gate.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const NS = `nwa-${randomBytes(3).toString('hex')}-life`;

const SCRIPT = `
const { createNetlinkSource } = await import(${JSON.stringify(`${ROOT}dist/source/netlink-source.js`)});
const [netns, mode] = process.argv.slice(1);
const s = createNetlinkSource({ netns, nflogGroups: [9] });
await s.start({ conntrack() {}, nflog() {}, loss() {}, dumpBegin() {}, dumpEnd() {}, error() {} });
process.stdout.write('started\\n');
if (mode === 'unref') s.unref();
if (mode === 'close') await s.close();
if (mode === 'exit') process.exit(3);
`;

function runMode(mode: string, waitMs: number): Promise<{ code: number | null; signal: string | null; out: string; err: string; alive: boolean }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', SCRIPT, `/var/run/netns/${NS}`, mode], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
    }, waitMs);
    let alive = true;
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      alive = signal === 'SIGKILL';
      resolve({ code, signal, out, err, alive });
    });
  });
}

describeLive('native source lifecycle (root: a namespace)', () => {
  beforeAll(() => {
    execFileSync(process.execPath, [`${ROOT}node_modules/typescript/bin/tsc`, '-p', `${ROOT}tsconfig.build.json`], { stdio: 'pipe' });
    execFileSync('ip', ['netns', 'add', NS]);
  }, 60_000);
  afterAll(() => {
    execFileSync('ip', ['netns', 'del', NS], { stdio: 'ignore' });
  });

  it('keeps the process alive while started (ref by default)', async () => {
    const r = await runMode('ref', 1500);
    expect(r.out).toBe('started\n');
    expect(r.alive).toBe(true);
  });

  it('lets the process exit after unref()', async () => {
    const r = await runMode('unref', 5000);
    expect([r.out, r.code, r.alive]).toEqual(['started\n', 0, false]);
  });

  it('lets the process exit after close() (reader joined, sockets closed)', async () => {
    const r = await runMode('close', 5000);
    expect([r.out, r.code, r.alive, r.err]).toEqual(['started\n', 0, false, '']);
  });

  it('tears down a running reader on process.exit() without a crash', async () => {
    const r = await runMode('exit', 5000);
    expect([r.out, r.code, r.signal, r.err]).toEqual(['started\n', 3, null, '']);
  });
});
