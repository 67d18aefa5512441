// Kernel side of the loss scenario: the burst really creates ~2000 flows in R, and a listener
// slower than the kernel loses events — the kernel's own Drops column in /proc/net/netlink
// says so. The slow listener is `conntrack -E` whose stdout we stop reading during the burst
// (it blocks on write and stops draining its socket), so the outcome does not depend on how
// busy the machine is.
import { spawn } from 'node:child_process';
import { afterEach, expect, it } from 'vitest';
import { createLab, type Lab } from '../../src/lab/topology.js';
import { snapshot } from '../../src/lab/scenarios/kernel.js';
import { loss, lossFlows, netlinkDrops } from '../../src/lab/scenarios/loss.js';
import { describeLive } from '../helpers/gate.js';

describeLive('lab loss (kernel side)', () => {
  let lab: Lab | undefined;
  afterEach(async () => {
    await lab?.destroy();
    lab = undefined;
  });

  it('2000 UDP flows in a burst overflow a stalled conntrack -E listener', async () => {
    const sc = loss();
    lab = await createLab({ prefix: 'nwd' });
    await sc.setup(lab);
    const listener = spawn('ip', ['netns', 'exec', lab.router, 'conntrack', '-E', '-p', 'udp'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let lines = 0;
    let stderr = '';
    listener.stdout.on('data', (d: Buffer) => (lines += d.toString().split('\n').length - 1));
    listener.stderr.on('data', (d: Buffer) => (stderr += d));
    try {
      await new Promise((r) => setTimeout(r, 300));
      const before = await snapshot(lab, lab.router);
      listener.stdout.pause();
      const t0 = Date.now();
      const load = await sc.trigger(lab);
      const ms = Date.now() - t0;
      listener.stdout.resume();
      expect(load.ok).toBeGreaterThanOrEqual(1900);
      const after = await snapshot(lab, lab.router);
      expect(after.count - before.count).toBeGreaterThanOrEqual(1900);
      // Every answered flow is in R's table; a flow whose echo was lost on a busy machine is too.
      expect(await lossFlows(lab)).toBeGreaterThanOrEqual(load.ok);
      const drops = [...(await netlinkDrops(lab, lab.router)).values()].reduce((a, b) => a + b, 0);
      console.log(`loss: ${load.summary} in ${ms} ms; conntrack -E printed ${lines} lines; netlink drops ${drops}; ${stderr.trim()}`);
      expect(drops).toBeGreaterThan(0);
      await load.release();
    } finally {
      listener.kill('SIGKILL');
    }
  });
});
