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

  it('a 60-port scan hitting one rule: 20 per-destination alerts, then one aggregate with the other 40', async () => {
    lab = await createLab({ prefix: 'nwd' });
    await lab.nft(
      lab.router,
      'table inet nwlab_filter {\n  chain nwfwd {\n    type filter hook forward priority 0;\n' +
        `    udp dport 20001-20060 counter log prefix "scan " group ${GROUP} drop\n  }\n}\n`,
    );
    watcher = await watchRouter(lab.nsPath(lab.router), { nflogGroups: [GROUP] });
    // Two datagrams to each of 60 ports, from the client through R (bounded, fire and forget).
    const scan =
      "const s=require('dgram').createSocket('udp4');let n=0;" +
      "for(let r=0;r<2;r++)for(let p=20001;p<=20060;p++)s.send('x',p,'198.51.100.8',()=>{if(++n===120)s.close()});";
    const r = await lab.exec(lab.client, process.execPath, ['-e', scan], { timeoutMs: 10_000 });
    expect(r.code, r.stderr).toBe(0);
    const isScan = (m: ServerMessage): m is Alert => m.type === 'alert' && m.kind === 'nflog_drop' && (m.key as { prefix: string }).prefix === 'scan ';
    const agg = await watcher.ws.waitFor<Alert>((m) => isScan(m) && m.key && (m.key as { dstIp: unknown }).dstIp === null, WAIT, 'aggregate');
    expect(agg).toMatchObject({ state: 'firing', key: { prefix: 'scan ', group: GROUP, proto: null, dstIp: null, dstPort: null } });
    // Let the remaining packets land and the growth be re-sent, then read the latest of each key.
    const counted = await nftRulePackets(lab, lab.router, 'dport 20001-20060');
    expect(counted).toBe(120);
    const deadline = Date.now() + WAIT;
    let latest = new Map<string, Alert>();
    while (Date.now() < deadline) {
      latest = new Map(watcher.ws.alerts().filter(isScan).map((a) => [JSON.stringify(a.key), a]));
      if ([...latest.values()].reduce((n, a) => n + a.drops, 0) === counted) break;
      await new Promise((res) => setTimeout(res, 200));
    }
    const per = [...latest.values()].filter((a) => (a.key as { dstIp: unknown }).dstIp !== null);
    const aggregate = [...latest.values()].filter((a) => (a.key as { dstIp: unknown }).dstIp === null);
    expect(per).toHaveLength(20);
    expect(aggregate).toHaveLength(1);
    expect(aggregate[0]!.destinations).toBe(40);
    expect((aggregate[0]!.detail as { top: unknown[] }).top).toHaveLength(10);
    expect(aggregate[0]!.message).toMatch(/^(resolved: )?Packets to 40 more destinations \(beyond the 20 alerted one by one\) were dropped by the rule logging "scan" \(NFLOG group 5\)/);
    // Every packet the rule dropped is in exactly one of the 21 alerts.
    expect([...latest.values()].reduce((n, a) => n + a.drops, 0)).toBe(counted);
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
