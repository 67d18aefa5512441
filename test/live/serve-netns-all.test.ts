// `natwatch serve --netns all` while namespaces come and go. Two lab NATs are built first under
// names serve excludes; each router then appears under a name of its own (a bind mount into
// /var/run/netns, as `ip netns add` makes one) with its 10-port masquerade rule already in place,
// so serve must open it and read its ruleset at once: the capacity of 10 comes from that rule.
// Deleting the name (`ip netns del`) must resolve that namespace's alerts and drop its keys,
// while the other namespace's alerts stay. The excludes keep other programs' namespaces on this
// machine out of the test.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { run, type Lab, type PeerProcess } from '../../src/lab/topology.js';
import type { Alert, PortKey, StatsMessage, TopEntry } from '../../src/types.js';
import { describeLive } from '../helpers/gate.js';
import { natLab } from '../helpers/nat-lab.js';
import { getJson, startServe, type ServeHandle } from '../helpers/serve.js';
import { until } from '../helpers/wait.js';
import { connectStream, type StreamClient } from '../helpers/ws-client.js';

const BIN = new URL('../../bin/natwatch.js', import.meta.url).pathname;
const ID = randomBytes(3).toString('hex');
/** The names serve may watch: nwmzs<ID>-<n>; every other name is excluded by the globs below. */
const alias = (n: number) => `nwmzs${ID}-${n}`;
const EXCLUDE = ['[!n]*', 'n[!w]*', 'nw[!m]*', 'nwm[!z]*', 'nwmz[!s]*'];

describeLive('serve --netns all follows namespaces created and deleted while it runs (live)', () => {
  const labs: Lab[] = [];
  const peers: PeerProcess[] = [];
  const shown: string[] = [];
  let serve: ServeHandle | undefined;
  let ws: StreamClient | undefined;

  const show = async (lab: Lab, name: string): Promise<void> => {
    const path = `/var/run/netns/${name}`;
    writeFileSync(path, '');
    shown.push(name);
    const r = await run('mount', ['--bind', lab.nsPath(lab.router), path]);
    if (r.code !== 0) throw new Error(`mount --bind: ${r.stderr}`);
  };
  const hide = async (name: string): Promise<void> => {
    const r = await run('ip', ['netns', 'del', name]);
    if (r.code !== 0) throw new Error(`ip netns del ${name}: ${r.stderr}`);
  };

  beforeAll(async () => {
    labs.push(await natLab('nwmz'), await natLab('nwmz'));
  }, 120_000);

  afterAll(async () => {
    for (const p of peers) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    await ws?.close();
    await serve?.stop();
    for (const name of shown) if (existsSync(`/var/run/netns/${name}`)) await run('ip', ['netns', 'del', name]);
    for (const lab of labs) await lab.destroy();
  });

  it('a namespace that appears is watched within 2 s with its ruleset; its alerts carry netns; deleting it resolves them and drops its keys', async () => {
    // An NFLOG group nobody uses: serve must not bind the groups named by rulesets it reads.
    serve = await startServe({ netns: 'all', args: [...EXCLUDE.flatMap((g) => ['--netns-exclude', g]), '--nflog-group', '47113'] });
    ws = await connectStream(serve.wsUrl + '?types=alert,stats');
    // The first stats message from now on that satisfies pred.
    const stats = (pred: (s: StatsMessage) => boolean, what: string, ms = 10_000) => {
      const from = ws!.messages.length;
      return ws!.waitFor<StatsMessage>((m) => m.type === 'stats' && ws!.messages.indexOf(m) >= from && pred(m), ms, what);
    };
    const names = (s: StatsMessage) => (s.namespaces ?? []).map((n) => n.netns);
    await stats((s) => names(s).length === 1 && names(s)[0] === null, 'stats of natwatch\'s own namespace alone');

    // Two namespaces appear.
    const [a, b] = [alias(0), alias(1)];
    const t0 = Date.now();
    await show(labs[0]!, a);
    await show(labs[1]!, b);
    // serve logs the moment each one is open (ruleset read, sockets subscribed, table dumped).
    const logged = (ns: string) => serve!.output().includes(`"netns":"${ns}","msg":"watching namespace"`);
    await until('serve watching both', () => logged(a) && logged(b), 5_000);
    const appearMs = Date.now() - t0;
    await stats((s) => names(s).includes(a) && names(s).includes(b), 'both new namespaces in stats');
    console.log(`two namespaces watched ${appearMs} ms after they appeared (in stats ${Date.now() - t0} ms after)`);
    expect(appearMs).toBeLessThan(2_000);

    // NAT exhaustion in each: alerts carry their namespace, capacity from each one's ruleset.
    for (const lab of labs) {
      peers.push(lab.spawnPeer(lab.client, ['connect', '--proto', 'tcp', '--to', '198.51.100.8:80', '--count', '15', '--timeout-ms', '3000', '--hold-ms', '60000']));
    }
    const fired = (ns: string) =>
      ws!.waitFor<Alert>((m) => m.type === 'alert' && m.kind === 'nat_port_exhaustion' && m.state === 'firing' && m.netns === ns && m.severity === 'critical', 15_000, `critical alert in ${ns}`);
    const [fa, fb] = await Promise.all([fired(a), fired(b)]);
    for (const f of [fa, fb]) {
      expect(f).toMatchObject({ used: 10, capacity: 10, key: { proto: 'tcp', natIp: '198.51.100.1', dstIp: '198.51.100.8', dstPort: 80 } });
    }
    expect(fa.seq).not.toBe(fb.seq);
    // The kernel's drops were the full keys' (drops read before the events that filled a key are
    // held ≥ 150 ms), never an unexplained conntrack_drops.
    expect(ws.alerts().filter((x) => x.kind === 'conntrack_drops' && (x.netns === a || x.netns === b))).toEqual([]);
    // /v1/top is the last stats message's top (per second).
    const ours = (t: TopEntry[]) => t.filter((e) => e.netns === a || e.netns === b);
    await stats((s) => ours(s.top).length === 2, 'both namespaces in stats.top');
    const top = await getJson<TopEntry[]>(serve, '/v1/top');
    expect(top.filter((e) => e.netns === a || e.netns === b).map((e) => [e.netns, e.used]).sort()).toEqual([[a, 10], [b, 10]]);
    const metrics = await (await fetch(`${serve.url}/metrics`)).text();
    expect(metrics).toMatch(new RegExp(`^natwatch_nat_ports_used\\{proto="tcp",nat_ip="198\\.51\\.100\\.1",dst_ip="198\\.51\\.100\\.8",dst_port="80",netns="${a}"\\} 10$`, 'm'));
    // Every series names a watched namespace: a's own events counted under a, none under "all".
    expect(metrics).not.toMatch(/netns="all"/);
    expect(Number(new RegExp(`^natwatch_events_received_total\\{source="conntrack",netns="${a}"\\} (\\d+)$`, 'm').exec(metrics)?.[1])).toBeGreaterThanOrEqual(10);

    // a is deleted: its alert resolves, its keys leave top and stats; b's alert stays.
    const t1 = Date.now();
    await hide(a);
    const res = await ws.waitFor<Alert>((m) => m.type === 'alert' && m.state === 'resolved' && m.netns === a, 10_000, `resolved alert in ${a}`);
    console.log(`alerts of the deleted namespace resolved ${Date.now() - t1} ms after ip netns del`);
    expect(res).toMatchObject({ kind: 'nat_port_exhaustion', key: fa.key as PortKey });
    expect(res.message).toMatch(/no longer watched/);
    expect(res.seq).toBeGreaterThan(fb.seq);
    const firing = await getJson<Alert[]>(serve, '/v1/alerts');
    expect(firing.filter((x) => x.kind === 'nat_port_exhaustion').map((x) => x.netns)).toContain(b);
    expect(firing.some((x) => x.netns === a)).toBe(false);
    expect((await getJson<TopEntry[]>(serve, '/v1/top')).some((e) => e.netns === a)).toBe(false);
    const after = await stats((s) => !names(s).includes(a), `stats without ${a}`);
    expect(names(after)).toContain(b);
    expect(after.top.some((e) => e.netns === a)).toBe(false);
    expect(after.top.some((e) => e.netns === b)).toBe(true);

    // b goes too.
    await hide(b);
    await ws.waitFor<Alert>((m) => m.type === 'alert' && m.state === 'resolved' && m.netns === b, 10_000, `resolved alert in ${b}`);
    await stats((s) => names(s).length === 1, 'stats of natwatch\'s own namespace alone again');
    expect(serve.output()).toContain(`"netns":"${b}","msg":"namespace gone"`);
    expect(serve.output()).not.toMatch(/uncaught|unhandled/i);
  }, 120_000);

  it('events --netns all: a namespace that appears has its events printed with its netns; one deleted is let go', async () => {
    const c = alias(2);
    // Its own NFLOG group: the first test's serve still holds 47113 in natwatch's own namespace.
    const args = ['events', '--netns', 'all', ...EXCLUDE.flatMap((g) => ['--netns-exclude', g]), '--nflog-group', '47118', '--json', '--no-dump'];
    const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (err += d));
    const exit = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      await new Promise((r) => setTimeout(r, 500));
      await show(labs[0]!, c);
      const lab = labs[0]!;
      const ours = () => out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { netns: string | null; event: string; orig: { dport: number } });
      // Connections through the new namespace's NAT (to a closed port: the first test's clients
      // still hold every NAT port to :80) until their events show with its name.
      const deadline = Date.now() + 10_000;
      while (!ours().some((e) => e.netns === c && e.event === 'new' && e.orig.dport === 81)) {
        if (Date.now() > deadline) throw new Error(`no event from ${c}; stderr: ${err}; stdout: ${out.slice(-500)}`);
        await lab.runPeer(lab.client, ['connect', '--proto', 'tcp', '--to', '198.51.100.8:81', '--count', '1', '--timeout-ms', '300']).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 100));
      }
      await hide(c);
      await new Promise((r) => setTimeout(r, 1500));
      expect(child.exitCode).toBeNull(); // still running after the namespace went away
      child.kill('SIGINT');
      expect(await exit).toBe(0);
      expect(err).toBe('');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 60_000);
}, { tools: ['ip', 'nft', 'conntrack', 'mount'] });
