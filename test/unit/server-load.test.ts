// Issue 8's flood, measured on the server process alone: 1000 alerts in the replay ring, 60
// clients that never read, each asking for the whole ring 40 times. Before the replay limits
// this grew the server past 900 MiB and /healthz stopped answering.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { ensureBuilt } from '../helpers/cli-build.js';

const CHILD = fileURLToPath(new URL('../helpers/flooded-server.mjs', import.meta.url));
const CLIENTS = 60;
const REPLAYS = 40;
const LIMIT_MIB = 300;

let child: ChildProcess | null = null;
let port = 0;

beforeAll(async () => {
  ensureBuilt();
  child = spawn(process.execPath, [CHILD], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NATWATCH_LOG_LEVEL: 'error', RING: '1000' } });
  port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`server did not start: ${out}`)), 20_000);
    child!.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /PORT (\d+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    });
    child!.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    child!.once('exit', (code) => reject(new Error(`server exited ${code}: ${out}`)));
  });
}, 180_000);

afterAll(async () => {
  if (!child || child.exitCode !== null) return;
  const gone = new Promise((r) => child!.once('exit', r));
  child.kill('SIGTERM');
  const t = setTimeout(() => child!.kill('SIGKILL'), 5000);
  await gone;
  clearTimeout(t);
});

const rssMiB = (pid: number): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;

describe('bounded under hostile load', () => {
  it(`${CLIENTS} clients that never read, ${REPLAYS} full replays each: server under ${LIMIT_MIB} MiB and /healthz answers`, async () => {
    const pid = child!.pid!;
    let peak = rssMiB(pid);
    const sampler = setInterval(() => (peak = Math.max(peak, rssMiB(pid))), 50);
    const sockets: WebSocket[] = [];
    try {
      // Spread over loopback addresses: the per-address limit (16) is not what is under test.
      await Promise.all(
        Array.from({ length: CLIENTS }, (_, i) =>
          new Promise<void>((resolve, reject) => {
            const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/stream?types=alert`, { localAddress: `127.0.0.${2 + (i % 8)}`, perMessageDeflate: false });
            sockets.push(ws);
            ws.once('open', () => {
              // Never read: everything the server sends stays in its buffers and the kernel's.
              (ws as unknown as { _socket: import('node:net').Socket })._socket.pause();
              for (let r = 0; r < REPLAYS; r++) ws.send(JSON.stringify({ type: 'subscribe', since: 0 }));
              resolve();
            });
            ws.once('error', reject);
          }),
        ),
      );
      // Let the server take every frame and answer them (bounded wait).
      await new Promise((r) => setTimeout(r, 3000));
      const t0 = Date.now();
      // Generous for a loaded CI machine: what broke before was no answer at all.
      const res = await fetch(`http://127.0.0.1:${port}/healthz`, { signal: AbortSignal.timeout(5000) });
      const healthMs = Date.now() - t0;
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ status: 'ok' });
      expect(healthMs).toBeLessThan(5000);
      peak = Math.max(peak, rssMiB(pid));
      expect(peak).toBeLessThan(LIMIT_MIB);
      console.log(`flood: peak server RSS ${peak.toFixed(0)} MiB, /healthz in ${healthMs} ms`);
    } finally {
      clearInterval(sampler);
      for (const ws of sockets) ws.terminate();
    }
  }, 60_000);
});
