// serve as deploy/systemd/natwatch.service runs it (uid 65534, CAP_NET_ADMIN only) inside a
// router namespace whose NAT is nftables only. Where the kernel has x_tables, the namespace
// lists its iptables-legacy tables in /proc/net/ip_tables_names, mode 0440 root: uid 65534
// cannot read it. That is said once, as a warning naming CAP_DAC_READ_SEARCH, however often
// the ruleset is read again, and never at error level; keys the nftables rule explains keep
// their ruleset capacity. Where the file is absent there are no legacy tables to miss and
// nothing is said. With CAP_DAC_READ_SEARCH added (the opt-in drop-in of docs/security.md) an
// iptables-legacy masquerade is read and explains its key's capacity.
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLab, run, type Lab } from '../../src/lab/topology.js';
import { holdConnect } from '../../src/lab/scenarios/traffic.js';
import type { Load } from '../../src/lab/scenarios/types.js';
import { ROOT } from '../helpers/cli-build.js';
import { describeLive } from '../helpers/gate.js';
import { readableRuntime, removeReadableRuntime } from '../helpers/readable-runtime.js';
import { freePort } from '../helpers/serve.js';
import { sleep, until } from '../helpers/wait.js';

/** setpriv argv: uid/gid 65534 holding only these capabilities (as the systemd unit's DynamicUser). */
const nobody = (caps: string[]) => {
  const list = caps.map((c) => `+${c}`).join(',');
  return ['setpriv', '--reuid', '65534', '--regid', '65534', '--clear-groups', '--inh-caps', list, '--ambient-caps', list, '--bounding-set', `-all,${list}`];
};
const UNCHECKED = /tables-legacy tables not checked/;

const masquerade = (hi: number) => `flush ruleset
table ip nat {
  chain post {
    type nat hook postrouting priority srcnat;
    oifname "r-out" ip protocol tcp masquerade to :50000-${hi}
  }
}
`;

interface TopEntry {
  capacity: number;
  capacitySource: string;
  capacityReason: string | null;
}

/** GET /v1/top from inside the namespace (serve listens on its loopback). */
async function top(ns: string, port: number): Promise<TopEntry[]> {
  const script = `fetch('http://127.0.0.1:${port}/v1/top').then(r=>r.text()).then(t=>process.stdout.write(t),()=>process.stdout.write('[]'))`;
  const r = await run('ip', ['netns', 'exec', ns, process.execPath, '-e', script], { timeoutMs: 10_000 });
  try {
    return JSON.parse(r.stdout || '[]') as TopEntry[];
  } catch {
    return [];
  }
}

/** serve inside ns as uid 65534 with caps; its output collected; stopped by its PID. */
async function serveAsNobody(ns: string, caps: string[]) {
  const port = await freePort();
  const child = spawn('ip', ['netns', 'exec', ns, ...nobody(caps), process.execPath, readableRuntime(), 'serve', '--listen', `127.0.0.1:${port}`], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NATWATCH_LOG_LEVEL: 'info' },
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const h = {
    child,
    out: () => out,
    /** Waits until the busiest key's capacity is `want`, from the ruleset. */
    async capacityBecomes(want: number): Promise<void> {
      const end = Date.now() + 15_000;
      for (;;) {
        if (child.exitCode !== null) throw new Error(`serve exited ${child.exitCode}: ${out}`);
        const t = (await top(ns, port))[0];
        if (t?.capacity === want) {
          expect(t).toMatchObject({ capacitySource: 'ruleset', capacityReason: null });
          return;
        }
        if (Date.now() > end) throw new Error(`capacity never became ${want} (last: ${JSON.stringify(t)}); serve said: ${out}`);
        await sleep(200);
      }
    },
    /** SIGTERM, then its log as records. */
    async stop(): Promise<LogLine[]> {
      if (child.exitCode === null && child.signalCode === null) {
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await Promise.race([gone, sleep(5000)]);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
      return out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as LogLine);
    },
  };
  try {
    await until('serve listening', () => out.includes('"listening"') || child.exitCode !== null, 20_000, 50);
    expect(child.exitCode, out).toBeNull();
  } catch (err) {
    await h.stop();
    throw err;
  }
  return h;
}

interface LogLine {
  level: number;
  msg: string;
  err?: string;
}

afterAll(removeReadableRuntime);

/** The lab with one TCP connection held from the client through the router to the server. */
async function labWithFlow(prefix: string, nat: (lab: Lab) => Promise<void>): Promise<{ lab: Lab; load: Load }> {
  const lab = await createLab({ prefix });
  try {
    await nat(lab);
    await lab.spawnPeer(lab.server, ['serve', '--proto', 'tcp', '--port', '80']).ready;
    const load = await holdConnect(lab, lab.client, { proto: 'tcp', to: '198.51.100.8:80', count: 1, timeoutMs: 2000, holdMs: 60_000 });
    expect(load.ok).toBe(1);
    return { lab, load };
  } catch (err) {
    await lab.destroy();
    throw err;
  }
}

describeLive('serve as uid 65534 with CAP_NET_ADMIN only, nftables NAT: unlistable legacy tables are one warning', () => {
  let env: { lab: Lab; load: Load } | undefined;
  let serve: Awaited<ReturnType<typeof serveAsNobody>> | undefined;

  beforeAll(async () => {
    env = await labWithFlow('nwq', (lab) => lab.nft(lab.router, masquerade(50009)));
  }, 60_000);

  afterAll(async () => {
    await serve?.stop();
    await env?.load.release();
    await env?.lab.destroy();
  });

  it('one warn line naming CAP_DAC_READ_SEARCH across ruleset re-reads, no error line; ruleset capacities unaffected', async () => {
    const { lab } = env!;
    // uid 0 reads the list when x_tables is in the kernel; otherwise the file does not exist.
    const legacyPossible = (await run('ip', ['netns', 'exec', lab.router, 'cat', '/proc/net/ip_tables_names'])).code === 0;
    serve = await serveAsNobody(lab.router, ['net_admin']);
    // The first read, then two more through nf_tables notifications and one on SIGHUP: each
    // capacity change proves a read went through.
    await serve.capacityBecomes(10);
    await lab.nft(lab.router, masquerade(50019));
    await serve.capacityBecomes(20);
    process.kill(serve.child.pid!, 'SIGHUP');
    await lab.nft(lab.router, masquerade(50029));
    await serve.capacityBecomes(30);
    const lines = await serve.stop();
    const said = lines.filter((l) => UNCHECKED.test(`${l.msg} ${l.err ?? ''}`));
    if (legacyPossible) {
      expect(said, serve.out()).toHaveLength(1);
      expect(said[0]!.level, serve.out()).toBe(40); // pino's warn
      expect(said[0]!.msg).toMatch(/^iptables-legacy tables not checked: \/proc\/net\/ip_tables_names is readable by root only \(need CAP_DAC_READ_SEARCH\)/);
    } else {
      expect(said, serve.out()).toEqual([]);
    }
    // Nothing else this unprivileged run meets is worth an error line either.
    expect(lines.filter((l) => l.level >= 50), serve.out()).toEqual([]);
  });
}, { tools: ['ip', 'nft', 'setpriv'] });

describeLive('serve as uid 65534 with CAP_NET_ADMIN and CAP_DAC_READ_SEARCH, iptables-legacy NAT', () => {
  let env: { lab: Lab; load: Load } | undefined;
  let serve: Awaited<ReturnType<typeof serveAsNobody>> | undefined;

  beforeAll(async () => {
    env = await labWithFlow('nwv', async (lab) => {
      const r = await lab.exec(lab.router, 'iptables-legacy', ['-t', 'nat', '-A', 'POSTROUTING', '-o', 'r-out', '-p', 'tcp', '-j', 'MASQUERADE', '--to-ports', '60000-60004']);
      expect(r.code, r.stderr).toBe(0);
    });
  }, 60_000);

  afterAll(async () => {
    await serve?.stop();
    await env?.load.release();
    await env?.lab.destroy();
  });

  it('the legacy table is read: its key has the ruleset capacity, and nothing is said about unchecked tables', async () => {
    serve = await serveAsNobody(env!.lab.router, ['net_admin', 'dac_read_search']);
    await serve.capacityBecomes(5);
    const lines = await serve.stop();
    expect(lines.filter((l) => UNCHECKED.test(`${l.msg} ${l.err ?? ''}`)), serve.out()).toEqual([]);
    expect(lines.filter((l) => l.level >= 50), serve.out()).toEqual([]);
  });
}, { tools: ['ip', 'iptables-legacy', 'setpriv'] });
