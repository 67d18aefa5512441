// Kernel facts need no external program and no root: serve and doctor with an empty
// environment (`env -i PATH=/nonexistent`: no nft, iptables, ip, nsenter, conntrack to find)
// against an exhausted iptables-nft `MASQUERADE --to-ports` range, and serve as uid 65534
// holding only CAP_NET_ADMIN inside the router namespace. The lab still builds everything with
// ip/nft/iptables; natwatch itself must run none of them.
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLab, type Lab } from '../../src/lab/topology.js';
import { holdConnect } from '../../src/lab/scenarios/traffic.js';
import type { Load } from '../../src/lab/scenarios/types.js';
import type { DoctorReport } from '../../src/doctor/index.js';
import type { Alert } from '../../src/types.js';
import { BIN, ensureBuilt, ROOT } from '../helpers/cli-build.js';
import { freePort } from '../helpers/serve.js';
import { sleep } from '../helpers/wait.js';
import { describeLive } from '../helpers/gate.js';
import { readableRuntime, removeReadableRuntime } from '../helpers/readable-runtime.js';

const NEEDS = { tools: ['ip', 'nft', 'iptables-nft', 'iptables-legacy', 'setpriv'] };

const EMPTY_ENV = ['-i', 'PATH=/nonexistent'];
const NOBODY = ['setpriv', '--reuid', '65534', '--regid', '65534', '--clear-groups', '--inh-caps', '+net_admin', '--ambient-caps', '+net_admin', '--bounding-set', '-all,+net_admin'];

function run(cmd: string, args: string[], timeoutMs = 30_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d) => (stdout += d));
    c.stderr.on('data', (d) => (stderr += d));
    const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.once('exit', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Polls GET url/v1/alerts (from inside ns when given: the daemon listens on its loopback). */
async function alertsOf(url: string, ns: string | null): Promise<Alert[]> {
  if (ns === null) {
    const r = await fetch(`${url}/v1/alerts`).catch(() => null);
    return r?.ok ? ((await r.json()) as Alert[]) : [];
  }
  const script = `fetch(${JSON.stringify(`${url}/v1/alerts`)}).then(r=>r.text()).then(t=>process.stdout.write(t),()=>process.stdout.write('[]'))`;
  const r = await run('ip', ['netns', 'exec', ns, process.execPath, '-e', script], 10_000);
  try {
    return JSON.parse(r.stdout || '[]') as Alert[];
  } catch {
    return [];
  }
}

async function waitAlert(url: string, ns: string | null, daemon: ChildProcess, out: () => string): Promise<Alert> {
  const end = Date.now() + 20_000;
  while (Date.now() < end) {
    if (daemon.exitCode !== null) throw new Error(`serve exited ${daemon.exitCode}: ${out()}`);
    const hit = (await alertsOf(url, ns)).find((a) => a.kind === 'nat_port_exhaustion');
    if (hit) return hit;
    await sleep(300);
  }
  throw new Error(`no nat_port_exhaustion within 20 s; serve said: ${out()}`);
}

function daemon(argv: string[]): { child: ChildProcess; out: () => string; stop: () => Promise<void> } {
  const child = spawn(argv[0]!, argv.slice(1), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout!.on('data', (d) => (text += d));
  child.stderr!.on('data', (d) => (text += d));
  return {
    child,
    out: () => text.slice(-4000),
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await Promise.race([gone, sleep(5000)]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

afterAll(removeReadableRuntime);

describeLive('no external program, no root: an exhausted iptables-nft 20-port masquerade', () => {
  let lab: Lab;
  let load: Load | undefined;
  const daemons: Array<{ stop(): Promise<void> }> = [];

  beforeAll(async () => {
    ensureBuilt();
    lab = await createLab({ prefix: 'nwp' });
    const r = await lab.exec(lab.router, 'iptables-nft', ['-t', 'nat', '-A', 'POSTROUTING', '-o', 'r-out', '-p', 'tcp', '-j', 'MASQUERADE', '--to-ports', '50000-50019']);
    expect(r.code, r.stderr).toBe(0);
    await lab.spawnPeer(lab.server, ['serve', '--proto', 'tcp', '--port', '80']).ready;
    // Exhausted before natwatch starts: serve must find it from the table dump and the ruleset.
    load = await holdConnect(lab, lab.client, { proto: 'tcp', to: '198.51.100.8:80', count: 25, timeoutMs: 2000, holdMs: 90_000 });
    expect(load.ok).toBe(20);
  }, 120_000);

  afterAll(async () => {
    for (const d of daemons) await d.stop();
    await load?.release();
    await lab?.destroy();
  });

  it('serve under env -i PATH=/nonexistent: nat_port_exhaustion 20/20 from the ruleset', async () => {
    const port = await freePort();
    const d = daemon(['/usr/bin/env', ...EMPTY_ENV, process.execPath, BIN, 'serve', '--netns', lab.nsPath(lab.router), '--listen', `127.0.0.1:${port}`]);
    daemons.push(d);
    const a = await waitAlert(`http://127.0.0.1:${port}`, null, d.child, d.out);
    expect(a).toMatchObject({ key: { proto: 'tcp', natIp: '198.51.100.1', dstIp: '198.51.100.8', dstPort: 80 }, used: 20, capacity: 20, capacitySource: 'ruleset' });
    const top = (await (await fetch(`http://127.0.0.1:${port}/v1/top`)).json()) as Array<{ capacity: number; capacitySource: string }>;
    expect(top[0]).toMatchObject({ capacity: 20, capacitySource: 'ruleset' });
  });

  it('doctor under env -i PATH=/nonexistent: snat-capacity fails at capacity 20 ports per address', async () => {
    const r = await run('/usr/bin/env', [...EMPTY_ENV, process.execPath, BIN, 'doctor', '--netns', lab.nsPath(lab.router), '--json']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout) as DoctorReport;
    const c = report.checks.find((x) => x.id === 'snat-capacity')!;
    expect(c.verdict).toBe('fail');
    expect(c.finding).toContain('20 flows through NAT address 198.51.100.1, capacity 20 ports per address (100%)');
    expect(report.checks.find((x) => x.id === 'nat-port-range')!.finding).toContain('50000-50019 (20 ports)');
  });

  it('serve as uid 65534 with only CAP_NET_ADMIN inside the router namespace: 20/20 from the ruleset', async () => {
    const port = await freePort();
    const d = daemon(['ip', 'netns', 'exec', lab.router, ...NOBODY, process.execPath, readableRuntime(), 'serve', '--listen', `127.0.0.1:${port}`]);
    daemons.push(d);
    const a = await waitAlert(`http://127.0.0.1:${port}`, lab.router, d.child, d.out);
    expect(a).toMatchObject({ used: 20, capacity: 20, capacitySource: 'ruleset' });
    // What it could not read is named once, with the capability, never a silent default.
    expect(d.out()).toMatch(/iptables-legacy tables not checked: .*CAP_DAC_READ_SEARCH/);
  });
}, NEEDS);

describeLive('a ruleset part that cannot be read is never a silent default', () => {
  let lab: Lab;
  let load: Load | undefined;
  const daemons: Array<{ stop(): Promise<void> }> = [];

  beforeAll(async () => {
    ensureBuilt();
    lab = await createLab({ prefix: 'nwu' });
    // Only an iptables-legacy rule: uid 65534 cannot list the legacy tables (0440 root).
    const r = await lab.exec(lab.router, 'iptables-legacy', ['-t', 'nat', '-A', 'POSTROUTING', '-o', 'r-out', '-p', 'tcp', '-j', 'MASQUERADE', '--to-ports', '60000-60004']);
    expect(r.code, r.stderr).toBe(0);
    await lab.spawnPeer(lab.server, ['serve', '--proto', 'tcp', '--port', '80']).ready;
    load = await holdConnect(lab, lab.client, { proto: 'tcp', to: '198.51.100.8:80', count: 3, timeoutMs: 2000, holdMs: 60_000 });
    expect(load.ok).toBe(3);
  }, 120_000);

  afterAll(async () => {
    for (const d of daemons) await d.stop();
    await load?.release();
    await lab?.destroy();
  });

  it('serve as uid 65534: the key\'s capacity source is unknown, with the capability it lacks', async () => {
    const port = await freePort();
    const d = daemon(['ip', 'netns', 'exec', lab.router, ...NOBODY, process.execPath, readableRuntime(), 'serve', '--listen', `127.0.0.1:${port}`]);
    daemons.push(d);
    const script = `fetch('http://127.0.0.1:${port}/v1/top').then(r=>r.text()).then(t=>process.stdout.write(t),()=>process.stdout.write('[]'))`;
    let top: Array<{ used: number; capacity: number; capacitySource: string; capacityReason: string | null }> = [];
    const end = Date.now() + 15_000;
    while (Date.now() < end && !(top[0]?.used === 3)) {
      if (d.child.exitCode !== null) throw new Error(`serve exited: ${d.out()}`);
      await sleep(300);
      const r = await run('ip', ['netns', 'exec', lab.router, process.execPath, '-e', script], 10_000);
      try {
        top = JSON.parse(r.stdout || '[]');
      } catch {
        top = [];
      }
    }
    expect(top[0]).toMatchObject({ used: 3, capacity: 64512, capacitySource: 'unknown' });
    expect(top[0]!.capacityReason).toMatch(/iptables-legacy tables not checked: .*need CAP_DAC_READ_SEARCH/);
  });

  it('--netns without CAP_SYS_ADMIN: serve and doctor say so in one line, exit 1', async () => {
    for (const cmd of [['serve', '--listen', '127.0.0.1:0'], ['doctor']]) {
      const r = await run('setpriv', [...NOBODY.slice(1), process.execPath, readableRuntime(), cmd[0]!, '--netns', lab.nsPath(lab.router), ...cmd.slice(1)]);
      expect(r.code, cmd[0]).toBe(1);
      expect(r.stderr.trim(), cmd[0]).toBe(`natwatch: need CAP_SYS_ADMIN to enter network namespace ${lab.nsPath(lab.router)}`);
    }
  });
}, NEEDS);
