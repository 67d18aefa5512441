// Throwaway client – NAT router – server namespaces with documentation addresses, for the lab
// command and the live tests. Everything made here is removed by destroy(), which also kills
// the peers it started (by PID).
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { netnsPath } from '../netns.js';

export const ADDR = {
  client: '192.0.2.5',
  routerIn: '192.0.2.1',
  routerOut: '198.51.100.1',
  server: '198.51.100.8',
  client6: '2001:db8:1::5',
  routerIn6: '2001:db8:1::1',
  routerOut6: '2001:db8:2::1',
  server6: '2001:db8:2::8',
} as const;

/** Plain JS peer (lab/peer.mjs), two levels up from both src/lab and dist/lab. */
const PEER = fileURLToPath(new URL('../../lab/peer.mjs', import.meta.url));

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface PeerProcess extends ChildProcess {
  /** Resolves once the peer printed `ready` (servers) — rejects if it exits first. */
  ready: Promise<void>;
}

export interface LabOptions {
  /** Short prefix of the namespace names; a random suffix makes them unique. */
  prefix: string;
  /** Also configure the 2001:db8:1::/64 and 2001:db8:2::/64 addresses. */
  ipv6?: boolean;
}

export interface Lab {
  readonly client: string;
  readonly router: string;
  readonly server: string;
  nsPath(ns: string): string;
  exec(ns: string, cmd: string, args?: string[], opts?: { input?: string; timeoutMs?: number }): Promise<ExecResult>;
  /** `nft -f -` inside ns; throws with nft's message on failure. */
  nft(ns: string, rules: string): Promise<void>;
  spawnPeer(ns: string, args: string[]): PeerProcess;
  /** Runs a peer to completion and parses the JSON line it printed. */
  runPeer(ns: string, args: string[], timeoutMs?: number): Promise<{ ok: number; failed: number }>;
  /** Kills the peers this lab started (by PID) and leaves the namespaces (`lab --keep`). */
  stopPeers(): Promise<void>;
  destroy(): Promise<void>;
}

export function run(cmd: string, args: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: opts.timeoutMs ?? 20_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) || (err && !stderr ? String(err.message) : '') });
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

async function must(cmd: string, args: string[], input?: string): Promise<string> {
  const r = await run(cmd, args, { input });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr.trim() || `exit ${r.code}`}`);
  return r.stdout;
}

export async function createLab(opts: LabOptions): Promise<Lab> {
  const id = randomBytes(3).toString('hex');
  const client = `${opts.prefix}-${id}-c`;
  const router = `${opts.prefix}-${id}-r`;
  const server = `${opts.prefix}-${id}-s`;
  const peers = new Set<ChildProcess>();
  const made: string[] = [];
  let destroyed = false;

  const ipn = (ns: string, ...args: string[]) => must('ip', ['-n', ns, ...args]);
  const sysctl = (ns: string, kv: string) => must('ip', ['netns', 'exec', ns, 'sysctl', '-qw', kv]);

  const stopPeers = async () => {
    for (const p of peers) {
      if (p.exitCode === null && p.signalCode === null && p.pid) {
        const gone = new Promise((r) => p.once('exit', r));
        p.kill('SIGKILL');
        await Promise.race([gone, new Promise((r) => setTimeout(r, 2000))]);
      }
    }
  };

  const destroy = async () => {
    if (destroyed) return;
    destroyed = true;
    await stopPeers();
    for (const ns of made.reverse()) await run('ip', ['netns', 'del', ns]);
  };

  try {
    for (const ns of [client, router, server]) {
      await must('ip', ['netns', 'add', ns]);
      made.push(ns);
      await ipn(ns, 'link', 'set', 'lo', 'up');
      // Before any link exists, so every interface inherits it: no DAD wait, addresses usable at once.
      if (opts.ipv6) await sysctl(ns, 'net.ipv6.conf.default.accept_dad=0');
    }
    await ipn(router, 'link', 'add', 'r-in', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', client);
    await ipn(router, 'link', 'add', 'r-out', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', server);
    if (opts.ipv6) await sysctl(router, 'net.ipv6.conf.all.forwarding=1');
    await sysctl(router, 'net.ipv4.ip_forward=1');
    const addrs: Array<[string, string, string, string | null]> = [
      [client, 'eth0', `${ADDR.client}/24`, `${ADDR.client6}/64`],
      [router, 'r-in', `${ADDR.routerIn}/24`, `${ADDR.routerIn6}/64`],
      [router, 'r-out', `${ADDR.routerOut}/24`, `${ADDR.routerOut6}/64`],
      [server, 'eth0', `${ADDR.server}/24`, `${ADDR.server6}/64`],
    ];
    for (const [ns, dev, v4, v6] of addrs) {
      await ipn(ns, 'addr', 'add', v4, 'dev', dev);
      if (opts.ipv6 && v6) await ipn(ns, 'addr', 'add', v6, 'dev', dev, 'nodad');
      await ipn(ns, 'link', 'set', dev, 'up');
    }
    await ipn(client, 'route', 'add', 'default', 'via', ADDR.routerIn);
    await ipn(server, 'route', 'add', 'default', 'via', ADDR.routerOut);
    if (opts.ipv6) {
      await ipn(client, '-6', 'route', 'add', 'default', 'via', ADDR.routerIn6);
      await ipn(server, '-6', 'route', 'add', 'default', 'via', ADDR.routerOut6);
    }
  } catch (err) {
    await destroy();
    throw err;
  }

  const exec: Lab['exec'] = (ns, cmd, args = [], o) => run('ip', ['netns', 'exec', ns, cmd, ...args], o);

  const spawnPeer = (ns: string, args: string[]): PeerProcess => {
    const child = spawn('ip', ['netns', 'exec', ns, process.execPath, PEER, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }) as PeerProcess;
    peers.add(child);
    child.on('exit', () => peers.delete(child));
    child.ready = new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d;
        if (out.includes('ready')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`peer exited (${code}) before ready`)));
    });
    child.ready.catch(() => {});
    return child;
  };

  const runPeer: Lab['runPeer'] = async (ns, args, timeoutMs = 30_000) => {
    const r = await exec(ns, process.execPath, [PEER, ...args], { timeoutMs });
    const line = r.stdout.trim().split('\n').find((l) => l.startsWith('{'));
    if (r.code !== 0 || !line) throw new Error(`peer ${args[0]} failed: ${r.stderr.trim() || `exit ${r.code}`}`);
    return JSON.parse(line) as { ok: number; failed: number };
  };

  return {
    client,
    router,
    server,
    nsPath: (ns) => netnsPath(ns)!,
    exec,
    nft: async (ns, rules) => {
      const r = await exec(ns, 'nft', ['-f', '-'], { input: rules });
      if (r.code !== 0) throw new Error(`nft in ${ns}: ${r.stderr.trim()}`);
    },
    spawnPeer,
    runPeer,
    stopPeers,
    destroy,
  };
}
