// Kernel side of the nflog-drop and flush scenarios, without natwatch.
import { afterEach, expect, it } from 'vitest';
import { createLab, type Lab } from '../../src/lab/topology.js';
import { listEntries, nftRulePackets } from '../../src/lab/scenarios/kernel.js';
import { nflogDrop } from '../../src/lab/scenarios/nflog-drop.js';
import { flush } from '../../src/lab/scenarios/flush.js';
import { describeLive } from '../helpers/gate.js';

describeLive('lab nflog-drop and flush (kernel side)', () => {
  let lab: Lab | undefined;
  afterEach(async () => {
    await lab?.destroy();
    lab = undefined;
  });

  it('nflog-drop: the rule drops every SYN to 9999; nothing connects', async () => {
    const sc = nflogDrop();
    lab = await createLab({ prefix: 'nwd' });
    await sc.setup(lab);
    const load = await sc.trigger(lab);
    expect({ ok: load.ok, failed: load.failed }).toEqual({ ok: 0, failed: 3 });
    // 3 SYNs plus at least one retransmit each within 1.5 s
    expect(await nftRulePackets(lab, lab.router, 'dport 9999')).toBeGreaterThanOrEqual(6);
    expect((await sc.verifyKernel(lab, { counters: {}, count: 0 })).join()).toMatch(/dropped \d+ packets/);
    await load.release();
  });

  it('flush: no NAT rule left; old NATed flows stay, new flows still tracked (stateful filter)', async () => {
    const sc = flush();
    lab = await createLab({ prefix: 'nwd' });
    await sc.setup(lab);
    const load = await sc.trigger(lab);
    expect(load.ok).toBe(8);
    const rules = await lab.exec(lab.router, 'iptables', ['-t', 'nat', '-S']);
    expect(rules.stdout).not.toMatch(/MASQUERADE/);
    const tracked = await listEntries(lab, lab.router, ['-p', 'tcp', '--dport', '80']);
    expect(tracked.filter((e) => e.reply.dst === '198.51.100.1').length).toBe(3);
    expect(tracked.filter((e) => e.reply.dst === '192.0.2.5').length).toBe(5);
    const lines = await sc.verifyKernel(lab, { counters: {}, count: 0 });
    expect(lines.join('\n')).toContain('3 NATed flows from before the flush still held, 5 new un-NATed flows tracked');
    await load.release();
  });

  it('flush without a stateful rule: this kernel stops tracking new flows, old entries linger', async () => {
    const sc = flush({ statefulFilter: false });
    lab = await createLab({ prefix: 'nwd' });
    await sc.setup(lab);
    const load = await sc.trigger(lab);
    expect(load.ok).toBe(8);
    const tracked = await listEntries(lab, lab.router, ['-p', 'tcp', '--dport', '80']);
    expect(tracked.length).toBe(3);
    expect(tracked.every((e) => e.reply.dst === '198.51.100.1' && e.state === 'ESTABLISHED')).toBe(true);
    await load.release();
  });

  it('control: a router that never had a nat rule tracks nothing', async () => {
    lab = await createLab({ prefix: 'nwd' });
    const srv = lab.spawnPeer(lab.server, ['serve', '--proto', 'tcp', '--port', '80']);
    await srv.ready;
    const r = await lab.runPeer(lab.client, ['connect', '--proto', 'tcp', '--to', '198.51.100.8:80', '--count', '3']);
    expect(r.ok).toBe(3);
    expect(await listEntries(lab, lab.router)).toEqual([]);
  });
});
