// End to end: NAT rules flushed, conntrack still busy — and `natwatch doctor` (the built
// binary) says so, with the numbers the kernel shows.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, expect, it } from 'vitest';
import { createLab, type Lab } from '../../src/lab/topology.js';
import { flush } from '../../src/lab/scenarios/flush.js';
import { listEntries } from '../../src/lab/scenarios/kernel.js';
import type { Load } from '../../src/lab/scenarios/types.js';
import { describeLive } from '../helpers/gate.js';

const BIN = fileURLToPath(new URL('../../bin/natwatch.js', import.meta.url));

interface Check {
  id: string;
  verdict: string;
  finding: string;
  fix: string | null;
}

function doctor(nsPath: string): Promise<{ code: number; checks: Check[] }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, 'doctor', '--netns', nsPath, '--json'], { timeout: 15_000 }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? 1) : 0;
      try {
        resolve({ code, checks: (JSON.parse(stdout) as { checks: Check[] }).checks });
      } catch {
        reject(new Error(`doctor printed no JSON (exit ${code}): ${stderr}`));
      }
    });
  });
}

describeLive('e2e flush + doctor', () => {
  let lab: Lab | undefined;
  let load: Load | undefined;
  afterEach(async () => {
    await load?.release();
    await lab?.destroy();
    lab = load = undefined;
  });

  it('stateful filter left: every new flow is tracked with no NAT rule, and doctor says why', async () => {
    const sc = flush();
    lab = await createLab({ prefix: 'nwd' });
    await sc.setup(lab);
    load = await sc.trigger(lab);
    expect(load.ok).toBe(8);
    const tracked = (await listEntries(lab, lab.router)).length;
    expect(tracked).toBe(8);
    const r = await doctor(lab.nsPath(lab.router));
    expect(r.code).toBe(0);
    const active = r.checks.find((c) => c.id === 'conntrack-active')!;
    expect(active.finding).toMatch(/no NAT rules, but 1 rule\(s\) match on conntrack/);
    expect(active.finding).toContain(`every flow is tracked: ${tracked} entries`);
  });

  it('nothing left that needs conntrack: doctor flags the stale NATed entries and says how to drop them', async () => {
    const sc = flush({ statefulFilter: false });
    lab = await createLab({ prefix: 'nwd' });
    await sc.setup(lab);
    load = await sc.trigger(lab);
    const stale = await listEntries(lab, lab.router);
    expect(stale.length).toBe(3);
    const r = await doctor(lab.nsPath(lab.router));
    expect(r.code).toBe(0);
    const active = r.checks.find((c) => c.id === 'conntrack-active')!;
    expect(active.verdict).toBe('warn');
    expect(active.finding).toMatch(/conntrack still holds 3 entries \(3 still source-NATed\) but no rule uses NAT or conntrack/);
    expect(active.fix).toMatch(/conntrack -F/);
  });
});
