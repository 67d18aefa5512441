// Runs Debian's promtool (package `prometheus`). Outside CI a missing promtool skips the tests
// that need it, with the reason; under CI (env CI set) it is a failure: CI must install it.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

export const PROMTOOL = ['/usr/bin/promtool', '/usr/local/bin/promtool'].find((p) => existsSync(p)) ?? null;

/** True when the tests can run; under CI throws when promtool is missing. */
export function havePromtool(): boolean {
  if (PROMTOOL !== null) return true;
  if (process.env.CI) throw new Error('promtool not found: CI must install the Debian package `prometheus`');
  console.warn('skipping: promtool not installed (apt-get install prometheus)');
  return false;
}

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function promtool(args: string[], input?: string, cwd?: string): Run {
  const r = spawnSync(PROMTOOL!, args, { input, encoding: 'utf8', timeout: 30_000, cwd });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
