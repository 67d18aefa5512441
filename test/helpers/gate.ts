// One gate for every live suite: whether this machine can run it (root with CAP_NET_ADMIN and
// CAP_SYS_ADMIN, the tools the lab drives), and what happens when it cannot. Outside CI the
// suite is skipped with the reason in its name; under CI (env CI set) it fails instead, so a
// CI machine that lost root or a package cannot go green by running nothing.
import { accessSync, constants, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { describe, it } from 'vitest';

export interface Needs {
  /** Root with CAP_NET_ADMIN + CAP_SYS_ADMIN (namespaces, netlink, nft). Default true. */
  root?: boolean;
  /** Programs that must be on PATH. Default: what the lab drives (LAB_TOOLS). */
  tools?: readonly string[];
  /** Anything else the suite found missing, as the reason (null: nothing missing). */
  also?: string | null;
}

export const LAB_TOOLS = ['ip', 'nft', 'conntrack'] as const;
const CAP_NET_ADMIN = 12n; // linux/capability.h
const CAP_SYS_ADMIN = 21n;

export const underCI = !!process.env.CI && process.env.CI !== 'false' && process.env.CI !== '0';

/**
 * Runs a command with no privilege while staying uid 0: no capabilities in any set, so the
 * checkout stays readable even under a 0700 directory (a switch to nobody could not read it).
 * Prefix it to argv: spawn(DROP_PRIVILEGE[0], [...DROP_PRIVILEGE.slice(1), cmd, ...args]).
 */
export const DROP_PRIVILEGE = ['setpriv', '--inh-caps=-all', '--ambient-caps=-all', '--bounding-set=-all', '--'] as const;

function onPath(tool: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    try {
      accessSync(join(dir, tool), constants.X_OK);
      return true;
    } catch {
      // next PATH entry
    }
  }
  return false;
}

function effectiveCaps(): bigint {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

/** Why a suite with these needs cannot run here, or null when it can. */
export function blocker(needs: Needs = {}): string | null {
  if (process.platform !== 'linux') return `not Linux (${process.platform})`;
  if (needs.root ?? true) {
    if (process.getuid?.() !== 0) return `not root (uid ${process.getuid?.()})`;
    const caps = effectiveCaps();
    for (const [bit, name] of [[CAP_NET_ADMIN, 'CAP_NET_ADMIN'], [CAP_SYS_ADMIN, 'CAP_SYS_ADMIN']] as const) {
      if (((caps >> bit) & 1n) === 0n) return `root without ${name}`;
    }
  }
  const missing = (needs.tools ?? LAB_TOOLS).filter((t) => !onPath(t));
  if (missing.length > 0) return `missing on PATH: ${missing.join(', ')}`;
  return needs.also ?? null;
}

/** The default live needs are met (root, capabilities, lab tools). */
export const liveReady = blocker() === null;

type SuiteFn = () => void;

/** describe() for a live suite: runs when `needs` are met; else skipped, or failing under CI. */
export function describeLive(name: string, fn: SuiteFn, needs?: Needs): void {
  const why = blocker(needs);
  if (why === null) describe(name, fn);
  else if (underCI) describe(name, () => it(`cannot run under CI: ${why}`, () => failGate(why)));
  else describe.skip(`${name} (skipped: ${why})`, fn);
}

/** it() for one live case inside an otherwise unprivileged suite. */
export function itLive(name: string, fn: () => void | Promise<void>, needs?: Needs): void {
  const why = blocker(needs);
  if (why === null) it(name, fn);
  else if (underCI) it(`${name} (cannot run under CI: ${why})`, () => failGate(why));
  else it.skip(`${name} (skipped: ${why})`, fn);
}

function failGate(why: string): never {
  throw new Error(`live test cannot run on this CI machine: ${why}`);
}
