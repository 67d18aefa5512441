// The new CLI surface against a lab router, through the built bin: one-shot `top` while the
// 10 NAT ports are held, `events` with filters and ECS output, `tail --format ecs` in-process,
// `doctor --fail-on` exit codes matching the verdicts it printed.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeLive } from '../helpers/gate.js';
import { fileURLToPath } from 'node:url';
import { ADDR, type Lab } from '../../src/lab/topology.js';
import { holdConnect } from '../../src/lab/scenarios/traffic.js';
import type { Load } from '../../src/lab/scenarios/types.js';
import type { StatsMessage } from '../../src/types.js';
import { natLab } from '../helpers/nat-lab.js';
import { sleep, until } from '../helpers/wait.js';
import { ecsProblems } from '../helpers/ecs-validate.js';

const BIN = fileURLToPath(new URL('../../bin/natwatch.js', import.meta.url));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

const run = (args: string[], env?: NodeJS.ProcessEnv) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000, ...(env ? { env } : {}) });

interface Bg {
  child: ChildProcess;
  out(): string;
  stop(): Promise<number | null>;
}
function background(args: string[]): Bg {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', () => undefined);
  const exit = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  return {
    child,
    out: () => out,
    async stop() {
      if (child.exitCode === null) child.kill('SIGINT');
      return exit;
    },
  };
}

describeLive('CLI parity (root: namespaces, traffic)', () => {
  let lab: Lab;
  let load: Load | undefined;
  const bgs: Bg[] = [];
  beforeAll(async () => {
    spawnSync(process.execPath, [`${ROOT}node_modules/typescript/bin/tsc`, '-p', `${ROOT}tsconfig.build.json`], { stdio: 'pipe' });
    lab = await natLab('nwp');
  }, 60_000);
  afterAll(async () => {
    for (const b of bgs) await b.stop();
    await load?.release();
    await lab?.destroy();
  });

  it('events: --dst/--event/--nat/--proto select, --format ecs prints valid ECS documents', async () => {
    const ecs = background(['events', '--netns', lab.router, '--no-dump', '--format', 'ecs', '--dst', `${ADDR.server}:80`, '--event', 'new', '--nat', 'snat', '--proto', 'tcp']);
    const all = background(['events', '--netns', lab.router, '--no-dump', '--json']);
    bgs.push(ecs, all);
    await sleep(500);
    await lab.runPeer(lab.client, ['connect', '--proto', 'tcp', '--to', `${ADDR.server}:80`, '--count', '2', '--hold-ms', '100']);
    await lab.runPeer(lab.client, ['connect', '--proto', 'tcp', '--to', `${ADDR.server}:9999`, '--count', '1', '--timeout-ms', '300']).catch(() => undefined);
    await until('events to :9999 in the unfiltered output', () => all.out().includes('"dport":9999'), 8000);
    await until('two new connections in the filtered output', () => ecs.out().trim().split('\n').filter(Boolean).length >= 2, 8000);
    await sleep(300);
    const docs = ecs.out().trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
    expect(docs).toHaveLength(2);
    for (const d of docs) {
      expect(ecsProblems(d)).toEqual([]);
      expect(d).toMatchObject({ event: { action: 'new', type: ['connection', 'start'] }, destination: { ip: ADDR.server, port: 80 }, source: { nat: { ip: ADDR.routerOut } }, natwatch: { netns: lab.router } });
    }
    // The unfiltered run saw updates and the other destination too.
    const lines = all.out().trim().split('\n').map((l) => JSON.parse(l) as { event: string; orig: { dport: number } });
    expect(lines.some((e) => e.event === 'update')).toBe(true);
    expect(lines.some((e) => e.orig.dport === 9999)).toBe(true);
  });

  it('top: one dump and the counters, the busiest destination 10/10, exit 0', async () => {
    // The first test's closed flows sit in TIME_WAIT on the NAT ports; whether the kernel lets
    // a new flow take such a port depends on which port it tries last, so start from none.
    await lab.exec(lab.router, 'conntrack', ['-F']);
    load = await holdConnect(lab, lab.client, { proto: 'tcp', to: `${ADDR.server}:80`, count: 15, timeoutMs: 2000, holdMs: 60_000 });
    expect(load.ok).toBe(10);
    const t0 = Date.now();
    const text = run(['top', '--netns', lab.router]);
    console.log(`natwatch top took ${Date.now() - t0} ms (noisy: shared machine)`);
    expect(text.stderr).toBe('');
    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(/^conntrack {2}\d+\/\d+ entries/);
    expect(text.stdout).toMatch(new RegExp(`^tcp +${ADDR.routerOut.replace(/\./g, '\\.')} +${ADDR.server.replace(/\./g, '\\.')}:80 +10 +10 +100\\.0%$`, 'm'));
    const json = run(['top', '--netns', lab.router, '--json']);
    expect(json.status).toBe(0);
    const stats = JSON.parse(json.stdout) as StatsMessage;
    expect(stats.top[0]).toMatchObject({ key: { proto: 'tcp', natIp: ADDR.routerOut, dstIp: ADDR.server, dstPort: 80 }, used: 10, capacity: 10 });
    expect(stats.counters.insert_failed).toBeGreaterThan(0);
    // No external program at run time: the same answer with an empty PATH (capacity from the
    // ruleset read over netlink, not from nft).
    const bare = run(['top', '--netns', lab.router, '--json'], { PATH: '/nonexistent' });
    expect(bare.stderr).toBe('');
    expect((JSON.parse(bare.stdout) as StatsMessage).top[0]).toMatchObject({ used: 10, capacity: 10 });
  });

  it('tail --format ecs (in-process) prints ECS documents, alerts among them', async () => {
    const t = background(['tail', '--netns', lab.router, '--format', 'ecs', '--severity', 'critical', '--dst', `${ADDR.server}:80`]);
    bgs.push(t);
    await until('a nat_port_exhaustion alert document', () => t.out().includes('"action":"nat_port_exhaustion"'), 15_000);
    expect(await t.stop()).toBe(0);
    const docs = t.out().trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>);
    for (const d of docs) expect(ecsProblems(d)).toEqual([]);
    const alert = docs.find((d) => d.event.kind === 'alert')!;
    expect(alert).toMatchObject({ event: { type: ['start'] }, natwatch: { severity: 'critical', key: { dst_port: 80 } } });
  });

  it('events --format ecs: NFLOG packets of a logging drop rule are denied, with rule.name', async () => {
    await lab.nft(lab.router, 'table inet nwp_filter {\n chain nwp_fwd {\n  type filter hook forward priority 0;\n  tcp dport 9999 log prefix "blocked-9999 " group 5 drop\n }\n}\n');
    const ev = background(['events', '--netns', lab.router, '--no-dump', '--format', 'ecs', '--dst', `${ADDR.server}:9999`]);
    bgs.push(ev);
    await sleep(500);
    await lab.runPeer(lab.client, ['connect', '--proto', 'tcp', '--to', `${ADDR.server}:9999`, '--count', '1', '--timeout-ms', '500']).catch(() => undefined);
    await until('an NFLOG document', () => ev.out().includes('natwatch.nflog'), 8000);
    const doc = ev.out().trim().split('\n').map((l) => JSON.parse(l) as Record<string, any>).find((d) => d.event.dataset === 'natwatch.nflog')!;
    expect(ecsProblems(doc)).toEqual([]);
    expect(doc).toMatchObject({ event: { type: ['denied'], action: 'nflog' }, rule: { name: 'blocked-9999' }, destination: { ip: ADDR.server, port: 9999 } });
  });

  it('doctor --fail-on: exit 3 exactly when a check reached that verdict', () => {
    const report = run(['doctor', '--netns', lab.router, '--json']);
    expect(report.status).toBe(0);
    const verdicts = (JSON.parse(report.stdout) as { checks: Array<{ verdict: string }> }).checks.map((c) => c.verdict);
    const warn = run(['doctor', '--netns', lab.router, '--fail-on', 'warn']);
    const fail = run(['doctor', '--netns', lab.router, '--fail-on', 'fail']);
    console.log(`doctor verdicts: ${verdicts.join(' ')}; --fail-on warn → ${warn.status}, fail → ${fail.status}`);
    expect(warn.status).toBe(verdicts.some((v) => v === 'warn' || v === 'fail') ? 3 : 0);
    expect(fail.status).toBe(verdicts.includes('fail') ? 3 : 0);
    // The 10-port NAT range the lab holds full is worth a warning at least.
    expect(warn.status).toBe(3);
    expect(warn.stdout).toMatch(/warn|fail/i);
  });
});
