// A real Alertmanager (Debian `prometheus-alertmanager`) on a free loopback port, single node
// (`--cluster.listen-address=` turns gossip off), its storage in a temporary directory; stopped
// by the PID started here. Outside CI a missing binary skips; under CI it is a failure.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './serve.js';

export const ALERTMANAGER_BIN = ['/usr/bin/prometheus-alertmanager', '/usr/local/bin/alertmanager'].find((p) => existsSync(p)) ?? null;

export interface AmAlertState {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  status: { state: string };
}

export interface AlertmanagerHandle {
  url: string;
  /** GET /api/v2/alerts (active, not resolved) whose labels include `match`. */
  alerts(match?: Record<string, string>): Promise<AmAlertState[]>;
  output(): string;
  stop(): Promise<void>;
}

const CONFIG = `route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n`;

export async function startAlertmanager(): Promise<AlertmanagerHandle> {
  const dir = mkdtempSync(join(tmpdir(), 'nwf-am-'));
  writeFileSync(join(dir, 'alertmanager.yml'), CONFIG);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(
    ALERTMANAGER_BIN!,
    ['--cluster.listen-address=', '--storage.path', join(dir, 'data'), '--web.listen-address', `127.0.0.1:${port}`, '--config.file', join(dir, 'alertmanager.yml')],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  const keep = (b: Buffer): void => {
    if (out.length < 100_000) out += b.toString();
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const pid = child.pid!;
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      process.kill(pid, 'SIGTERM');
      const t = setTimeout(() => child.exitCode === null && process.kill(pid, 'SIGKILL'), 5000);
      await gone;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`alertmanager exited (${child.exitCode}):\n${out}`);
    }
    try {
      if ((await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) })).ok) break;
    } catch {
      // not yet listening
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`alertmanager not ready in 15 s:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    output: () => out,
    stop,
    async alerts(match = {}) {
      const q = new URLSearchParams({ active: 'true', silenced: 'true', inhibited: 'true' });
      for (const [k, v] of Object.entries(match)) q.append('filter', `${k}="${v}"`);
      const res = await fetch(`${url}/api/v2/alerts?${q}`, { signal: AbortSignal.timeout(5000) });
      if (!res.ok) throw new Error(`alertmanager GET alerts: ${res.status}`);
      return (await res.json()) as AmAlertState[];
    },
  };
}
