// Kernel side of the port-exhaustion scenario, without natwatch: the lab must really make the
// kernel drop the flows past the NAT range (the e2e tests then check natwatch saw it).
import { afterEach, expect, it } from 'vitest';
import { createLab, type Lab } from '../../src/lab/topology.js';
import { deltas, listEntries, pollUntil, snapshot } from '../../src/lab/scenarios/kernel.js';
import { portExhaustion } from '../../src/lab/scenarios/port-exhaustion.js';
import { describeLive } from '../helpers/gate.js';

describeLive('lab port-exhaustion (kernel side)', () => {
  let lab: Lab | undefined;
  afterEach(async () => {
    await lab?.destroy();
    lab = undefined;
  });

  for (const variant of [
    { proto: 'tcp' as const, ipv6: false },
    { proto: 'udp' as const, ipv6: false },
    { proto: 'tcp' as const, ipv6: true },
  ]) {
    it(`${variant.proto}${variant.ipv6 ? ' ipv6' : ''}: 10 of 15 flows get a NAT port, the kernel drops the rest`, async () => {
      const sc = portExhaustion(variant);
      lab = await createLab({ prefix: 'nwd', ipv6: sc.ipv6 });
      await sc.setup(lab);
      const before = await snapshot(lab, lab.router);
      const load = await sc.trigger(lab);
      expect({ ok: load.ok, failed: load.failed }).toEqual({ ok: 10, failed: 5 });
      const after = await snapshot(lab, lab.router);
      expect(deltas(before, after).insert_failed ?? 0).toBeGreaterThan(0);
      const natIp = variant.ipv6 ? '2001:db8:2::1' : '198.51.100.1';
      const entries = await listEntries(lab, lab.router, ['-p', variant.proto], variant.ipv6 ? 'ipv6' : 'ipv4');
      const ports = new Set(entries.filter((e) => e.reply.dst === natIp).map((e) => e.reply.dport));
      expect([...ports].sort()).toEqual(Array.from({ length: 10 }, (_, i) => 50000 + i));
      const lines = await sc.verifyKernel(lab, before);
      expect(lines.join('\n')).toMatch(/insert_failed \+\d+/);
      await load.release();
      // Recovery: with R's short closing timeouts the NAT ports are free again within seconds.
      const t0 = Date.now();
      const freed = await pollUntil(async () => {
        const left = await listEntries(lab!, lab!.router, ['-p', variant.proto], variant.ipv6 ? 'ipv6' : 'ipv4');
        return left.filter((e) => e.reply.dst === natIp).length === 0;
      }, 15_000);
      expect(freed, 'NAT entries still present 15 s after the client closed').toBe(true);
      console.log(`${variant.proto}${variant.ipv6 ? '6' : ''}: entries gone ${Date.now() - t0} ms after release`);
    });
  }
});
