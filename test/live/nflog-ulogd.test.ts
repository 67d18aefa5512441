// Beside ulogd2: the ruleset logs to NFLOG group 7 and a real ulogd2 holds that group in the
// router namespace. serve, left to choose its groups from the ruleset, must start anyway, warn
// once naming the group, show it unbound (hello, metrics), still raise nat_port_exhaustion in
// that namespace, and take the group over once ulogd2 stops (a short --nflog-retry here; the
// 30 s default is pinned by test/unit/nflog-best-effort.test.ts).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ADDR, type Lab } from '../../src/lab/topology.js';
import { holdConnect } from '../../src/lab/scenarios/traffic.js';
import type { Load } from '../../src/lab/scenarios/types.js';
import type { Alert, HelloMessage, StatsMessage } from '../../src/types.js';
import { parseNfnetlinkLog } from '../../src/source/nflog-bindings.js';
import { natLab } from '../helpers/nat-lab.js';
import { havePromtool, promtool } from '../helpers/promtool.js';
import { startServe, watchRouter } from '../helpers/serve.js';
import { describeLive } from '../helpers/gate.js';
import { until } from '../helpers/wait.js';

const GROUP = 7;
const LOG_RULE = `table inet nwlog { chain filt { type filter hook forward priority 0; tcp dport 9999 log prefix "blocked-9999 " group ${GROUP} drop; }; }`;
const PLUGINS = '/usr/lib/x86_64-linux-gnu/ulogd';
const BIN = fileURLToPath(new URL('../../bin/natwatch.js', import.meta.url));

/** `natwatch doctor --json`'s nflog-groups finding for the namespace. */
function doctorNflog(netns: string): Promise<{ verdict: string; finding: string }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, 'doctor', '--netns', netns, '--json'], { timeout: 60_000 }, (err, stdout) => {
      try {
        const report = JSON.parse(stdout) as { checks: Array<{ id: string; verdict: string; finding: string }> };
        resolve(report.checks.find((c) => c.id === 'nflog-groups')!);
      } catch {
        reject(err ?? new Error(`doctor printed no JSON: ${stdout}`));
      }
    });
  });
}

/** Who holds NFLOG groups in ns: /proc/net/netfilter/nfnetlink_log (group → port id). */
async function nflogHolders(lab: Lab, ns: string): Promise<Map<number, number>> {
  return parseNfnetlinkLog((await lab.exec(ns, 'cat', ['/proc/net/netfilter/nfnetlink_log'])).stdout);
}

describeLive('NFLOG group held by ulogd2 (root: lab, ulogd2)', () => {
  let lab: Lab;
  let dir: string;
  let ulogd: ChildProcess | undefined;
  let load: Load | undefined;

  beforeAll(async () => {
    lab = await natLab('nwg');
    await lab.nft(lab.router, LOG_RULE);
    dir = mkdtempSync(join(tmpdir(), 'nwg-ulogd-'));
    const conf = join(dir, 'ulogd.conf');
    writeFileSync(conf, [
      '[global]',
      `logfile="${join(dir, 'ulogd.log')}"`,
      'loglevel=3',
      ...['inppkt_NFLOG', 'raw2packet_BASE', 'filter_IFINDEX', 'filter_IP2STR', 'filter_PRINTPKT', 'output_LOGEMU'].map((p) => `plugin="${PLUGINS}/ulogd_${p}.so"`),
      'stack=log1:NFLOG,base1:BASE,ifi1:IFINDEX,ip2str1:IP2STR,print1:PRINTPKT,emu1:LOGEMU',
      '[log1]',
      `group=${GROUP}`,
      '[emu1]',
      `file="${join(dir, 'packets.log')}"`,
      'sync=1',
      '',
    ].join('\n'));
    // `ip netns exec` execs ulogd in place: the PID we hold is ulogd's.
    ulogd = spawn('ip', ['netns', 'exec', lab.router, '/usr/sbin/ulogd', '-c', conf], { stdio: 'ignore' });
    for (let i = 0; i < 100 && !(await nflogHolders(lab, lab.router)).has(GROUP); i++) await new Promise((r) => setTimeout(r, 50));
    expect((await nflogHolders(lab, lab.router)).has(GROUP)).toBe(true);
  });
  afterAll(async () => {
    await load?.release();
    if (ulogd && ulogd.exitCode === null) ulogd.kill('SIGKILL');
    await lab?.destroy();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('doctor names ulogd2 as the holder of the group the ruleset logs to', async () => {
    const c = await doctorNflog(lab.nsPath(lab.router));
    expect(c.verdict).toBe('warn');
    expect(c.finding).toMatch(new RegExp(`^group ${GROUP}: held by ulogd \\(pid ${ulogd!.pid}\\)`));
  });

  it('an explicit --nflog-group that ulogd2 holds is a one-line error, exit 1', async () => {
    const err = await startServe({ netns: lab.nsPath(lab.router), args: ['--nflog-group', String(GROUP)] }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/exited \(1\) before ready/);
    expect((err as Error).message).toContain(`natwatch: NFLOG group ${GROUP} is already bound by another program (ulogd?)`);
  });

  it('serve runs without the group, warns once, still alerts, and takes the group over when ulogd2 stops', async () => {
    const w = await watchRouter(lab.nsPath(lab.router), {}, { args: ['--nflog-retry', '2'] });
    try {
      const hello = w.ws.messages.find((m) => m.type === 'hello') as HelloMessage;
      expect(hello.nflog).toEqual([{ group: GROUP, bound: false, reason: 'held by another program' }]);
      const warnings = () => w.serve.output().split('\n').filter((l) => l.includes(`NFLOG group ${GROUP} is held by another program`));
      await until('the warning', () => warnings().length > 0);
      const metrics = async () => (await (await fetch(`${w.serve.url}/metrics`)).text()).match(/^natwatch_nflog_group_bound\{group="7"[^}]*\} (\d)$/m)?.[1];
      expect(await metrics()).toBe('0');
      if (havePromtool()) {
        const check = promtool(['check', 'metrics'], await (await fetch(`${w.serve.url}/metrics`)).text());
        expect(check.stdout + check.stderr).toBe('');
      }

      // The namespace is still watched: a 10-port masquerade exhausted by 15 connections.
      load = await holdConnect(lab, lab.client, { proto: 'tcp', to: `${ADDR.server}:80`, count: 15, holdMs: 8_000 });
      expect({ ok: load.ok, failed: load.failed }).toEqual({ ok: 10, failed: 5 });
      await w.ws.waitFor<Alert>((m) => m.type === 'alert' && m.kind === 'nat_port_exhaustion' && m.state === 'firing', 15_000, 'nat_port_exhaustion');
      await load.release();
      load = undefined;
      expect(warnings()).toHaveLength(1); // once, not once per retry

      // ulogd2 stops: within a retry interval serve holds the group, and reads it.
      ulogd!.kill('SIGTERM');
      await until('ulogd2 gone', () => ulogd!.exitCode !== null || ulogd!.signalCode !== null, 5_000);
      await w.ws.waitFor<StatsMessage>((m) => m.type === 'stats' && (m as StatsMessage).nflog?.[0]?.bound === true, 10_000, 'stats with the group bound');
      expect(await metrics()).toBe('1');
      expect((await nflogHolders(lab, lab.router)).has(GROUP)).toBe(true);
      const c = await doctorNflog(lab.nsPath(lab.router));
      expect([c.verdict, c.finding]).toEqual(['ok', `group ${GROUP}: held by natwatch (pid ${w.serve.pid})`]);
      await lab.runPeer(lab.client, ['connect', '--proto', 'tcp', '--to', `${ADDR.server}:9999`, '--count', '1', '--timeout-ms', '1500']);
      await w.ws.waitFor<Alert>((m) => m.type === 'alert' && m.kind === 'nflog_drop', 15_000, 'nflog_drop after the takeover');
    } finally {
      await w.stop();
    }
  });
}, { tools: ['ip', 'nft', 'conntrack', 'ulogd'] });
