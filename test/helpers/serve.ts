// Spawns the real `natwatch serve` (built dist, through bin/natwatch.js) on a free loopback
// port, waits until /healthz answers, and stops it by the PID it started.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LAB_THRESHOLDS } from '../../src/lab/runner.js';
import { connectStream, type StreamClient } from './ws-client.js';

const BIN = fileURLToPath(new URL('../../bin/natwatch.js', import.meta.url));

export interface ServeHandle {
  readonly pid: number;
  readonly port: number;
  readonly url: string; // http://127.0.0.1:PORT
  readonly wsUrl: string; // ws://127.0.0.1:PORT/v1/stream
  /** Everything the daemon wrote so far (stdout+stderr), for failure messages. */
  output(): string;
  stop(): Promise<number | null>;
}

export interface ServeOptions {
  netns: string;
  args?: string[];
  env?: Record<string, string>;
  readyTimeoutMs?: number;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function exited(child: ChildProcess, ms: number): Promise<number | null | 'timeout'> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('timeout'), ms);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

export async function startServe(opts: ServeOptions): Promise<ServeHandle> {
  if (!existsSync(fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url)))) {
    throw new Error('natwatch is not built: run `npm run build` (node-gyp + tsc) before the e2e tests');
  }
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child = spawn(
    process.execPath,
    [BIN, 'serve', '--netns', opts.netns, '--listen', `127.0.0.1:${port}`, ...(opts.args ?? [])],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env } },
  );
  let out = '';
  const keep = (b: Buffer) => {
    if (out.length < 200_000) out += b.toString();
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const pid = child.pid;
  if (pid === undefined) throw new Error('natwatch serve did not start');

  const handle: ServeHandle = {
    pid,
    port,
    url,
    wsUrl: `ws://127.0.0.1:${port}/v1/stream`,
    output: () => out,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      process.kill(pid, 'SIGTERM');
      const code = await exited(child, 5_000);
      if (code !== 'timeout') return code;
      process.kill(pid, 'SIGKILL');
      const after = await exited(child, 2_000);
      return after === 'timeout' ? null : after;
    },
  };

  const deadline = Date.now() + (opts.readyTimeoutMs ?? 15_000);
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`natwatch serve exited (${child.exitCode ?? child.signalCode}) before ready:\n${out}`);
    }
    try {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1_000) });
      if (res.ok) return handle;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  await handle.stop();
  throw new Error(`natwatch serve not ready within ${opts.readyTimeoutMs ?? 15_000} ms:\n${out}`);
}

export async function getJson<T = unknown>(h: ServeHandle, path: string): Promise<T> {
  const res = await fetch(h.url + path, { signal: AbortSignal.timeout(5_000) });
  if (!res.ok) throw new Error(`GET ${path}: ${res.status}`);
  return (await res.json()) as T;
}

/**
 * `natwatch serve` on a lab's router with what the scenario needs (NAT ports, NFLOG groups,
 * the lab's short quiet windows through a --config file), plus a connected stream client.
 */
export async function watchRouter(
  nsPath: string,
  watch: { natPorts?: [number, number]; nflogGroups?: number[] },
  opts: { args?: string[]; thresholds?: Record<string, number>; env?: Record<string, string>; query?: string } = {},
): Promise<{ serve: ServeHandle; ws: StreamClient; stop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'nwd-serve-'));
  const config = join(dir, 'natwatch.json');
  writeFileSync(config, JSON.stringify({ thresholds: { ...LAB_THRESHOLDS, ...opts.thresholds } }));
  const args = [
    '--config', config,
    ...(watch.natPorts ? ['--nat-ports', `${watch.natPorts[0]}-${watch.natPorts[1]}`] : []),
    ...(watch.nflogGroups ?? []).flatMap((g) => ['--nflog-group', String(g)]),
    ...(opts.args ?? []),
  ];
  let serve: ServeHandle | undefined;
  try {
    serve = await startServe({ netns: nsPath, args, env: opts.env });
    const ws = await connectStream(serve.wsUrl + (opts.query ?? ''));
    await ws.waitFor((m) => m.type === 'hello', 5_000, 'hello');
    const s = serve;
    return {
      serve: s,
      ws,
      async stop() {
        await ws.close();
        await s.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await serve?.stop();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}
