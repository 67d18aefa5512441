// Client traffic that stays up: the peer's `connect` prints {"ok","failed"} once every
// connection has connected or timed out, then holds its sockets for --hold-ms. We read that
// line and return while the sockets are still open; release() kills the peer by its PID.
import type { Lab } from '../topology.js';
import type { Load } from './types.js';

/** Upper bound on how long any lab client holds its sockets, whatever the caller forgets. */
const MAX_HOLD_MS = 120_000;

export async function holdConnect(
  lab: Lab,
  ns: string,
  opts: { proto: 'tcp' | 'udp'; to: string; count: number; timeoutMs?: number; holdMs?: number; extra?: string[] },
): Promise<Load> {
  const timeoutMs = opts.timeoutMs ?? 2_000;
  const peer = lab.spawnPeer(ns, [
    'connect',
    '--proto', opts.proto,
    '--to', opts.to,
    '--count', String(opts.count),
    '--timeout-ms', String(timeoutMs),
    '--hold-ms', String(Math.min(opts.holdMs ?? MAX_HOLD_MS, MAX_HOLD_MS)),
    // UDP has no connection to hold: keep talking so R's entries outlive its short timeout.
    ...(opts.proto === 'udp' ? ['--every-ms', '500'] : []),
    ...(opts.extra ?? []),
  ]);
  const result = await new Promise<{ ok: number; failed: number }>((resolve, reject) => {
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`client did not report within ${timeoutMs + 10_000} ms`)), timeoutMs + 10_000);
    peer.stderr!.on('data', (d: Buffer) => (err += d));
    peer.stdout!.on('data', (d: Buffer) => {
      out += d;
      const line = out.split('\n').find((l) => l.startsWith('{') && l.endsWith('}'));
      if (line) {
        clearTimeout(timer);
        resolve(JSON.parse(line) as { ok: number; failed: number });
      }
    });
    peer.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`client exited (${code}) before reporting: ${err.trim()}`));
    });
  }).catch(async (e) => {
    if (peer.exitCode === null && peer.signalCode === null) peer.kill('SIGKILL');
    throw e;
  });

  let released = false;
  return {
    ...result,
    summary: `${result.ok} connected, ${result.failed} failed`,
    async release() {
      if (released) return;
      released = true;
      if (peer.exitCode !== null || peer.signalCode !== null) return;
      const gone = new Promise((r) => peer.once('exit', r));
      peer.kill('SIGKILL');
      await Promise.race([gone, new Promise((r) => setTimeout(r, 3_000))]);
    },
  };
}
