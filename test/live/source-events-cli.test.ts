// `natwatch events` end to end: the built CLI (dist/, compiled in beforeAll) against a lab
// router, text and JSON output, signals, EPIPE and the one-line errors.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ADDR, type Lab } from '../../src/lab/topology.js';
import { sleep, until as untilMs } from '../helpers/wait.js';
import { natLab } from '../helpers/nat-lab.js';
import { DROP_PRIVILEGE, describeLive } from '../helpers/gate.js';

const until = (what: string, cond: () => boolean, ms = 8000): Promise<void> => untilMs(what, cond, ms, 25);

const BIN = new URL('../../bin/natwatch.js', import.meta.url).pathname;
const ROOT = new URL('../../', import.meta.url).pathname;

interface Run {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exit: Promise<number | null>;
}

function natwatch(args: string[], wrap: string[] = []): Run {
  const cmd = wrap.length ? wrap[0]! : process.execPath;
  const argv = wrap.length ? [...wrap.slice(1), process.execPath, BIN, ...args] : [BIN, ...args];
  const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, out: () => out, err: () => err, exit };
}

describeLive('natwatch events CLI (root: namespaces, traffic)', () => {
  let lab: Lab;
  const runs: Run[] = [];
  const start = (args: string[], wrap?: string[]) => {
    const r = natwatch(args, wrap);
    runs.push(r);
    return r;
  };

  beforeAll(async () => {
    execFileSync(process.execPath, [`${ROOT}node_modules/typescript/bin/tsc`, '-p', `${ROOT}tsconfig.build.json`], { stdio: 'pipe' });
    lab = await natLab('nwa');
    await lab.nft(lab.router, `table inet filter { chain forward { type filter hook forward priority 0; tcp dport 9999 log prefix "blocked-9999 " group 5 drop; }; }`);
  }, 60_000);
  afterAll(async () => {
    for (const r of runs) if (r.child.exitCode === null) r.child.kill('SIGKILL');
    await lab?.destroy();
  });

  it('prints one readable line per event with both tuples, state and NAT marker; SIGINT exits 0', async () => {
    const r = start(['events', '--netns', lab.router, '--no-dump']);
    await sleep(400);
    await lab.runPeer(lab.client, ['connect', '--proto', 'tcp', '--to', `${ADDR.server}:80`, '--count', '1', '--hold-ms', '100']);
    const line = /\[NEW\]\s+tcp\s+192\.0\.2\.5:\d+ -> 198\.51\.100\.8:80 {2}reply 198\.51\.100\.8:80 -> 198\.51\.100\.1:5000\d {2}SYN_SENT snat id=\d+/;
    await until('NEW line', () => line.test(r.out()));
    await until('ESTABLISHED update', () => /\[UPDATE\]\s+tcp .* ESTABLISHED snat id=/.test(r.out())).catch((e) => { throw new Error(e.message + '\n' + r.out()); });
    r.child.kill('SIGINT');
    expect(await r.exit).toBe(0);
    expect(r.err()).toBe('');
  });

  it('--json prints the event objects one per line; the dump lists existing flows', async () => {
    const held = lab.spawnPeer(lab.client, ['connect', '--proto', 'tcp', '--to', `${ADDR.server}:80`, '--count', '1', '--hold-ms', '3000']);
    await sleep(500);
    const r = start(['events', '--netns', lab.nsPath(lab.router), '--json']);
    await until('a dumped established flow', () => r.out().includes('"state":"ESTABLISHED"'));
    const events = r.out().trim().split('\n').map((l) => JSON.parse(l));
    const e = events.find((x) => x.state === 'ESTABLISHED');
    expect(Object.keys(e).sort()).toEqual(['event', 'family', 'id', 'mark', 'nat', 'netns', 'orig', 'proto', 'reply', 'source', 'state', 'timeout', 'ts', 'type', 'zone']);
    expect(e.netns).toBe(lab.router); // the name of /var/run/netns/NAME
    expect(e).toMatchObject({ type: 'event', source: 'conntrack', family: 'ipv4', proto: 'tcp', nat: 'snat', orig: { src: ADDR.client, dst: ADDR.server, dport: 80 }, reply: { src: ADDR.server, dst: ADDR.routerOut, sport: 80 } });
    expect(new Date(e.ts).toISOString()).toBe(e.ts);
    r.child.kill('SIGTERM');
    expect(await r.exit).toBe(0);
    held.kill();
  });

  it('binds the NFLOG groups the ruleset logs to when none is given, and prints the packets', async () => {
    const r = start(['events', '--netns', lab.router, '--no-dump']);
    await sleep(800); // ruleset read, group bound
    await lab.runPeer(lab.client, ['connect', '--proto', 'tcp', '--to', `${ADDR.server}:9999`, '--count', '1', '--timeout-ms', '500']);
    const line = /\[NFLOG\] {3}group=5 "blocked-9999" tcp 192\.0\.2\.5:\d+ -> 198\.51\.100\.8:9999 in=r-in out=r-out len=\d+/;
    await until('NFLOG line', () => line.test(r.out()));
    r.child.kill('SIGINT');
    expect(await r.exit).toBe(0);
  });

  it('exits quietly when its reader goes away (EPIPE)', async () => {
    const r = start(['events', '--netns', lab.router, '--json']);
    await sleep(400);
    r.child.stdout!.destroy();
    await lab.runPeer(lab.client, ['connect', '--proto', 'tcp', '--to', `${ADDR.server}:80`, '--count', '3', '--hold-ms', '100']);
    const code = await Promise.race([r.exit, sleep(8000).then(() => 'hung')]);
    expect(code).toBe(0);
    expect(r.err()).toBe('');
  });

  it('names a missing namespace, exit 1', async () => {
    const r = start(['events', '--netns', 'nwa-no-such-ns']);
    expect(await r.exit).toBe(1);
    expect(r.err()).toBe("natwatch: network namespace 'nwa-no-such-ns' not found (/var/run/netns/nwa-no-such-ns)\n");
  });

  it('says it needs CAP_NET_ADMIN when run unprivileged, exit 1', async () => {
    const r = start(['events', '--nflog-group', '7'], [...DROP_PRIVILEGE]);
    expect(await r.exit).toBe(1);
    expect(r.err()).toBe('natwatch: need CAP_NET_ADMIN to subscribe to conntrack events\n');
  });

  it('rejects an unknown flag with exit 2 naming it', async () => {
    const r = start(['events', '--bogus']);
    expect(await r.exit).toBe(2);
    expect(r.err()).toContain("'--bogus'");
  });
});
