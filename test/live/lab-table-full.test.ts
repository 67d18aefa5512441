// Kernel side of the table-full scenario. This file alone lowers the machine-wide
// nf_conntrack_max (the live project runs files one at a time); the guard restores it in
// finally and on any exit, and the test checks that it did.
import { afterAll, describe, expect, it } from 'vitest';
import { createLab, type Lab } from '../../src/lab/topology.js';
import { deltas, snapshot } from '../../src/lab/scenarios/kernel.js';
import { tableFull } from '../../src/lab/scenarios/table-full.js';
import { guardSysctl, readSysctl, type SysctlGuard } from '../../src/lab/sysctl-guard.js';

const isRoot = process.getuid?.() === 0;
const KEY = 'net.netfilter.nf_conntrack_max';

describe.runIf(isRoot)('lab table-full (kernel side)', () => {
  const original = isRoot ? Number(readSysctl(KEY)) : 0;
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
