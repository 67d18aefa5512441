// Kernel side of the table-full scenario. This file alone lowers the machine-wide
// nf_conntrack_max (the live project runs files one at a time); the guard restores it in
// finally and on any exit, and the test checks that it did.
import { afterAll, expect, it } from 'vitest';
import { createLab, type Lab } from '../../src/lab/topology.js';
import { deltas, snapshot } from '../../src/lab/scenarios/kernel.js';
import { tableFull } from '../../src/lab/scenarios/table-full.js';
import { guardSysctl, readSysctl, type SysctlGuard } from '../../src/lab/sysctl-guard.js';
import { describeLive, liveReady } from '../helpers/gate.js';

const KEY = 'net.netfilter.nf_conntrack_max';

describeLive('lab table-full (kernel side)', () => {
  const original = liveReady ? Number(readSysctl(KEY)) : 0;
  let lab: Lab | undefined;
  let guard: SysctlGuard | undefined;
  afterAll(async () => {
    guard?.restore();
    await lab?.destroy();
    expect(Number(readSysctl(KEY))).toBe(original);
  });

  it('a lowered global max caps R: new flows dropped, count never above max', async () => {
    const sc = tableFull({ max: 64, flows: 100 });
    lab = await createLab({ prefix: 'nwd', ipv6: false });
    await sc.setup(lab);
    const before = await snapshot(lab, lab.router);
    guard = guardSysctl(KEY, sc.globalSysctls[KEY]!);
    try {
      expect(readSysctl(KEY)).toBe('64');
      const load = await sc.trigger(lab);
      const after = await snapshot(lab, lab.router);
      expect(load.ok).toBeLessThanOrEqual(64);
      expect(load.failed).toBeGreaterThanOrEqual(36);
      expect(after.count).toBeLessThanOrEqual(64);
      expect(deltas(before, after).drop ?? 0).toBeGreaterThan(0);
      console.log(`table-full: ${load.summary}; count ${after.count}; ${JSON.stringify(deltas(before, after))}`);
      await sc.verifyKernel(lab, before);
      await load.release();
    } finally {
      guard.restore();
    }
    expect(Number(readSysctl(KEY))).toBe(original);
  });
});

describeLive('natwatch lab --scenario table-full, killed mid-run', () => {
  it('SIGTERM while the max is lowered: restored, namespaces gone, exit 143', async () => {
    const { spawn, execFileSync } = await import('node:child_process');
    const { fileURLToPath } = await import('node:url');
    const original = readSysctl(KEY);
    const bin = fileURLToPath(new URL('../../bin/natwatch.js', import.meta.url));
    const child = spawn(process.execPath, [bin, 'lab', '--prefix', 'nwd', '--scenario', 'table-full'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let lowered = '';
    const done = new Promise<number | null>((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve(code);
      });
    });
    child.stdout.on('data', (d: Buffer) => {
      out += d;
      if (!lowered && /lowered from \d+ to 64/.test(out)) {
        lowered = readSysctl(KEY);
        child.kill('SIGTERM');
      }
    });
    const code = await done;
    expect(lowered, out).toBe('64');
    expect(code, out).toBe(143);
    expect(readSysctl(KEY)).toBe(original);
    const names = /namespaces (\S+) \(client\) (\S+) \(router\) (\S+) \(server\)/.exec(out)!.slice(1);
    const list = execFileSync('ip', ['netns', 'list']).toString();
    for (const ns of names) expect(list).not.toContain(ns);
  });
});
