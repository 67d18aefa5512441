// End to end: conntrack_table_full. The only e2e file that touches a machine-wide value: it
// lowers net.netfilter.nf_conntrack_max through sysctl-guard for a few seconds and restores it
// in finally and afterAll (and the guard restores it on any exit of this process).
import { afterAll, expect, it } from 'vitest';
import type { Alert, ServerMessage } from '../../src/types.js';
import { createLab, type Lab } from '../../src/lab/topology.js';
import { tableFull } from '../../src/lab/scenarios/table-full.js';
import { deltas, reapWhile, snapshot } from '../../src/lab/scenarios/kernel.js';
import { guardSysctl, readSysctl, type SysctlGuard } from '../../src/lab/sysctl-guard.js';
import type { Load } from '../../src/lab/scenarios/types.js';
import { watchRouter } from '../helpers/serve.js';
import { describeLive, liveReady } from '../helpers/gate.js';

const KEY = 'net.netfilter.nf_conntrack_max';
const WAIT = 15_000;
const tableAlert = (state: string) => (m: ServerMessage) =>
  m.type === 'alert' && m.kind === 'conntrack_table_full' && m.state === state;

describeLive('e2e conntrack_table_full', () => {
  const original = liveReady ? readSysctl(KEY) : '';
  let lab: Lab | undefined;
  let load: Load | undefined;
  let guard: SysctlGuard | undefined;
  let watcher: Awaited<ReturnType<typeof watchRouter>> | undefined;
  afterAll(async () => {
    guard?.restore();
    await load?.release();
    await watcher?.stop();
    await lab?.destroy();
    expect(readSysctl(KEY)).toBe(original);
  });

  it('max lowered to 64: critical at 64/64 with kernel drops, resolved once the flows close', async () => {
    const sc = tableFull({ max: 64, flows: 100 });
    lab = await createLab({ prefix: 'nwd' });
    await sc.setup(lab);
    watcher = await watchRouter(lab.nsPath(lab.router), sc.watch);
    const before = await snapshot(lab, lab.router);
    guard = guardSysctl(KEY, '64');
    try {
      load = await sc.trigger(lab);
      expect(load.failed).toBeGreaterThanOrEqual(36);
      const fired = await watcher.ws.waitFor<Alert>(
        (m) => tableAlert('firing')(m) && (m as Alert).severity === 'critical' && (m as Alert).drops > 0,
        WAIT,
        'critical conntrack_table_full with drops',
      );
      expect(fired).toMatchObject({ kind: 'conntrack_table_full', key: {}, severity: 'critical', capacity: 64 });
      expect(fired.used).toBeGreaterThanOrEqual(61); // ≥ 95 %
      expect(fired.used).toBeLessThanOrEqual(64);
      expect(fired.utilization).toBeCloseTo(fired.used! / 64, 5);
      expect(fired.message).toMatch(/nf_conntrack_max/);
      const k = deltas(before, await snapshot(lab, lab.router));
      expect((k.drop ?? 0) + (k.early_drop ?? 0)).toBeGreaterThan(0);

      await load.release();
      const resolved = await reapWhile(lab, lab.router, watcher.ws.waitFor<Alert>(tableAlert('resolved'), WAIT, 'resolved'));
      expect(resolved.seq).toBeGreaterThan(fired.seq);
      expect(resolved.used!).toBeLessThan(64 * 0.85);
    } finally {
      guard.restore();
    }
    expect(readSysctl(KEY)).toBe(original);
  });
});
