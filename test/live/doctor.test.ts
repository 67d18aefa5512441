// `natwatch doctor --netns` against lab namespaces prepared into the classic conditions.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLab, ADDR, type Lab } from '../../src/lab/topology.js';
import { holdConnect } from '../../src/lab/scenarios/traffic.js';
import type { Load } from '../../src/lab/scenarios/types.js';
import type { CheckResult, DoctorReport } from '../../src/doctor/index.js';
import { ensureBuilt, runCli } from '../helpers/cli-build.js';
import { describeLive } from '../helpers/gate.js';

async function doctor(ns: string): Promise<{ report: DoctorReport; text: string; byId: Map<string, CheckResult> }> {
  const j = await runCli(['doctor', '--netns', ns, '--json'], { timeoutMs: 30_000 });
  expect(j.stderr).toBe('');
  expect(j.code).toBe(0);
  const report = JSON.parse(j.stdout) as DoctorReport;
  const t = await runCli(['doctor', '--netns', ns], { timeoutMs: 30_000, env: { NO_COLOR: '1' } });
  expect(t.code).toBe(0);
  return { report, text: t.stdout, byId: new Map(report.checks.map((c) => [c.id, c])) };
}

async function iptables(lab: Lab, args: string[]): Promise<void> {
  const r = await lab.exec(lab.router, 'iptables', args);
  if (r.code !== 0) throw new Error(`iptables ${args.join(' ')}: ${r.stderr}`);
}

describeLive('natwatch doctor (root: real namespaces)', () => {
  let lab: Lab;
  const loads: Load[] = [];
  beforeAll(async () => {
    ensureBuilt();
    lab = await createLab({ prefix: 'nwc' });
    await lab.spawnPeer(lab.server, ['serve', '--proto', 'tcp', '--port', '80']).ready;
  }, 180_000);
  afterAll(async () => {
    for (const l of loads) await l.release();
    await lab?.destroy();
  });

  it('prints one line per check with a mark, in text and JSON', async () => {
    const { report, text } = await doctor(lab.router);
    expect(report.netns).toBe(lab.nsPath(lab.router));
    const ids = report.checks.map((c) => c.id);
    expect(ids).toEqual(['conntrack-active', 'conntrack-count', 'conntrack-buckets', 'nat-port-range', 'snat-capacity', 'conntrack-events', 'rcvbuf', 'tcp-timeouts', 'nflog-groups']);
    const lines = text.trim().split('\n').slice(1);
    expect(lines).toHaveLength(ids.length);
    for (const [i, l] of lines.entries()) expect(l).toMatch(new RegExp(`^[✓i!✗] (ok|info|warn|fail) +${ids[i]} `));
    for (const c of report.checks) if (c.fix) expect(text).toContain(`→ fix: ${c.fix}`);
  });

  it('NAT range overlapping the ephemeral range: info that explains the full-tuple rule', async () => {
    await lab.nft(lab.router, 'table ip nwcnat {\n chain post {\n type nat hook postrouting priority 100;\n oifname "r-out" meta l4proto tcp masquerade to :40000-40009\n }\n}\n');
    const range = (await lab.exec(lab.router, 'cat', ['/proc/sys/net/ipv4/ip_local_port_range'])).stdout.trim().split(/\s+/).map(Number);
    expect(range[0]! <= 40000 && 40009 <= range[1]!).toBe(true);
    const { byId } = await doctor(lab.router);
    const c = byId.get('nat-port-range')!;
    expect(c.verdict).toBe('info');
    expect(c.finding).toContain('40000-40009 (10 ports)');
    expect(c.finding).toContain(`${range[0]}-${range[1]}`);
    expect(c.finding).toMatch(/overlap is legal.*full tuple/);
    expect(byId.get('conntrack-active')!.verdict).toBe('ok');
  });

  it('busiest destination at the NAT range size: snat-capacity fails', async () => {
    const l = await holdConnect(lab, lab.client, { proto: 'tcp', to: `${ADDR.server}:80`, count: 12, timeoutMs: 1500, holdMs: 60_000 });
    loads.push(l);
    expect(l.ok).toBe(10);
    const c = (await doctor(lab.router)).byId.get('snat-capacity')!;
    expect(c.verdict).toBe('fail');
    expect(c.finding).toContain(`tcp ${ADDR.server}:80: 10 flows through NAT address ${ADDR.routerOut}, capacity 10 ports`);
    expect(c.fix).toMatch(/masquerade to :1024-65535/);
    await l.release();
  });

  it('NAT rules flushed while flows are up: conntrack still active, the check says so', async () => {
    await lab.exec(lab.router, 'nft', ['delete', 'table', 'ip', 'nwcnat']);
    await iptables(lab, ['-t', 'nat', '-A', 'POSTROUTING', '-o', 'r-out', '-j', 'MASQUERADE']);
    const l = await holdConnect(lab, lab.client, { proto: 'tcp', to: `${ADDR.server}:80`, count: 3, timeoutMs: 2000, holdMs: 60_000 });
    loads.push(l);
    expect(l.ok).toBe(3);
    await iptables(lab, ['-t', 'nat', '-F']);
    const { byId, text } = await doctor(lab.router);
    const c = byId.get('conntrack-active')!;
    expect(c.verdict).toBe('warn');
    expect(c.finding).toMatch(/still holds \d+ entries \((\d+) still source-NATed\) but no rule uses NAT or conntrack/);
    expect(Number(/\((\d+) still source-NATed\)/.exec(c.finding)![1])).toBeGreaterThanOrEqual(3);
    expect(c.fix).toContain(`ip netns exec ${lab.router} conntrack -F`);
    expect(text).toMatch(/^! warn +conntrack-active /m);

    // With a stateful filter rule left, every new flow is still tracked: said too, as info.
    await iptables(lab, ['-A', 'FORWARD', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT']);
    const again = (await doctor(lab.router)).byId.get('conntrack-active')!;
    expect(again.verdict).toBe('info');
    expect(again.finding).toMatch(/no NAT rules, but 1 rule\(s\) match on conntrack .*every flow is tracked/);
  });

  it('a missing namespace is a one-line error, exit 1', async () => {
    const r = await runCli(['doctor', '--netns', 'nwc-missing-ns-1234']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe("natwatch: network namespace 'nwc-missing-ns-1234' not found (/var/run/netns/nwc-missing-ns-1234)");
  });
});
