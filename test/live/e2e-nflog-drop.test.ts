// End to end: nflog_drop from a real `log prefix ... group 5 drop` rule, read by natwatch serve.
import { afterEach, expect, it } from 'vitest';
import type { Alert, ServerMessage } from '../../src/types.js';
import { createLab, type Lab } from '../../src/lab/topology.js';
import { GROUP, PREFIX, nflogDrop } from '../../src/lab/scenarios/nflog-drop.js';
import { nftRulePackets } from '../../src/lab/scenarios/kernel.js';
import type { Load } from '../../src/lab/scenarios/types.js';
import { watchRouter } from '../helpers/serve.js';
import { describeLive } from '../helpers/gate.js';

const WAIT = 15_000;
const KEY = { prefix: PREFIX, group: GROUP, proto: 'tcp', dstIp: '198.51.100.8', dstPort: 9999 };
const nflogAlert = (state: string) => (m: ServerMessage) =>
  m.type === 'alert' && m.kind === 'nflog_drop' && m.state === state && JSON.stringify(m.key) === JSON.stringify(KEY);

describeLive('e2e nflog_drop', () => {
  let lab: Lab | undefined;
  let load: Load | undefined;
  let watcher: Awaited<ReturnType<typeof watchRouter>> | undefined;
  afterEach(async () => {
    await load?.release();
    await watcher?.stop();
    await lab?.destroy();
    lab = load = watcher = undefined;
  });

  for (const how of ['--nflog-group 5', 'groups from the ruleset'] as const) {
    it(`the dropped SYNs raise nflog_drop keyed by prefix, group and destination (${how}), resolved when quiet`, async () => {
      const sc = nflogDrop();
      lab = await createLab({ prefix: 'nwd' });
      await sc.setup(lab);
      watcher = await watchRouter(lab.nsPath(lab.router), how === '--nflog-group 5' ? sc.watch : {});
      load = await sc.trigger(lab);
      expect(load.ok).toBe(0);
      const fired = await watcher.ws.waitFor<Alert>(nflogAlert('firing'), WAIT, 'nflog_drop');
      expect(fired).toMatchObject({ kind: 'nflog_drop', key: KEY, severity: 'warning', used: null, capacity: null, utilization: null });
      expect(fired.drops).toBeGreaterThan(0);
      expect(fired.message).toContain('198.51.100.8:9999');
      await load.release();
      // Everything natwatch counted was really dropped by the rule.
      const counted = await nftRulePackets(lab, lab.router, 'dport 9999');
      const last = watcher.ws.alerts().filter(nflogAlert('firing')).at(-1)!;
      expect(last.drops).toBeLessThanOrEqual(counted);
      const resolved = await watcher.ws.waitFor<Alert>(nflogAlert('resolved'), WAIT, 'resolved');
      expect(resolved.seq).toBeGreaterThan(fired.seq);
      expect(resolved.drops).toBe(counted);
    });
  }
});
