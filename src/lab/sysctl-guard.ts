// Sets a machine-wide sysctl (e.g. net.netfilter.nf_conntrack_max) for a lab scenario and puts
// the original value back on every way out: an explicit restore(), normal exit, an uncaught
// error (both reach process 'exit'), SIGINT/SIGTERM/SIGHUP. Restoring is synchronous so it
// works inside an 'exit' handler. The original value is also written to a state file under
// /run so that a run killed with SIGKILL is repaired by the next guard (or `natwatch lab`).
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NatwatchError } from '../errors.js';

const STATE_DIR = '/run/natwatch-lab';
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

export interface SysctlGuard {
  readonly key: string;
  /** The value found before the change, as the kernel printed it. */
  readonly original: string;
  readonly value: string;
  /** Put the original back; idempotent. */
  restore(): void;
}

/** net.netfilter.nf_conntrack_max -> /proc/sys/net/netfilter/nf_conntrack_max */
function sysctlPath(key: string): string {
  if (!/^[a-z0-9_]+(\.[a-z0-9_-]+)+$/i.test(key)) throw new NatwatchError('EUSAGE', `bad sysctl name '${key}'`);
  return '/proc/sys/' + key.replaceAll('.', '/');
}

export function readSysctl(key: string): string {
  return readFileSync(sysctlPath(key), 'utf8').trim();
}

function write(key: string, value: string): void {
  try {
    writeFileSync(sysctlPath(key), value + '\n');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const code = e.code === 'EACCES' || e.code === 'EPERM' ? 'EPERM' : 'ERUNTIME';
    throw new NatwatchError(code, `cannot set ${key}=${value}: ${e.code ?? e.message}`, { cause: err });
  }
}

// Namespaced sysctls (ip_local_port_range ...) belong to the netns that set them: a stale
// entry is only repaired from the same namespace.
function netnsId(): number {
  return statSync('/proc/self/ns/net').ino;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Restore values left behind by guards whose process died without running its handlers
 * (SIGKILL, OOM). Returns the keys repaired.
 */
export function repairStale(): string[] {
  if (!existsSync(STATE_DIR)) return [];
  const repaired: string[] = [];
  for (const name of readdirSync(STATE_DIR)) {
    const file = join(STATE_DIR, name);
    try {
      const st = JSON.parse(readFileSync(file, 'utf8')) as { key: string; original: string; pid: number; netns: number };
      if (st.netns !== netnsId() || pidAlive(st.pid)) continue;
      write(st.key, st.original);
      repaired.push(st.key);
    } catch {
      // unreadable state: nothing sane to restore from
    }
    rmSync(file, { force: true });
  }
  return repaired;
}

/**
 * Set `key` to `value` until restore() or process exit, whichever comes first. One guard per
 * key and namespace at a time: a second one would take the lowered value for the original and
 * "restore" it after the first had put the real one back.
 */
export function guardSysctl(key: string, value: string | number): SysctlGuard {
  repairStale();
  const target = String(value);
  const stateFile = join(STATE_DIR, `${key}@${netnsId()}.json`);
  mkdirSync(STATE_DIR, { recursive: true });
  const original = readSysctl(key);
  try {
    writeFileSync(stateFile, JSON.stringify({ key, original, pid: process.pid, netns: netnsId() }), { flag: 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    let holder = '?';
    try {
      holder = String((JSON.parse(readFileSync(stateFile, 'utf8')) as { pid: number }).pid);
    } catch {
      // being written right now
    }
    throw new NatwatchError('ERUNTIME', `${key} is already changed by natwatch (pid ${holder}); run one table-full scenario at a time`);
  }

  let done = false;
  const restore = (): void => {
    if (done) return;
    done = true;
    process.off('exit', restore);
    for (const s of SIGNALS) process.off(s, onSignal);
    try {
      write(key, original);
    } finally {
      rmSync(stateFile, { force: true });
    }
  };
  // Restore first; if nobody else handles the signal, die of it as we would have without us.
  // Count the other listeners before restore() removes ours: one that was there when the
  // signal came (a runner tearing down) decides, even if it has unhooked itself meanwhile.
  function onSignal(signal: NodeJS.Signals): void {
    const others = process.listenerCount(signal) - 1;
    restore();
    if (others === 0) process.kill(process.pid, signal);
  }
  process.on('exit', restore);
  for (const s of SIGNALS) process.on(s, onSignal);

  try {
    write(key, target);
  } catch (err) {
    restore();
    throw err;
  }
  return { key, original, value: target, restore };
}
