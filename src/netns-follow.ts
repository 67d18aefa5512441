// Which namespaces a `--netns` list means, kept current. Explicit names and paths stay as given;
// `all` is natwatch's own namespace plus every one mounted under /var/run/netns, minus the
// `--netns-exclude` globs, read again every second and whenever the directory changes; the
// streamer and `events` compare each reading with what they watch (a namespace that appears is
// watched within about a second, one that is deleted is let go).
import { statSync, watch, type FSWatcher } from 'node:fs';
import { systemClock, type Clock } from './alert/clock.js';
import { UsageError } from './errors.js';
import { globRegExp, listNetns, NETNS_DIR, netnsName, netnsPath, ownNetns, type NetnsEntry } from './netns.js';

/** `--netns` values meaning natwatch's own namespace plus every named one, followed. */
export const ALL_NETNS = 'all';

export interface NetnsSpec {
  /** `--netns` values as given: a name, a path, null/'' for natwatch's own, or 'all'. */
  netns: ReadonlyArray<string | null>;
  /** Globs over the names found under /var/run/netns that `all` leaves out. */
  exclude?: readonly string[];
}

/** One namespace to watch. */
export interface NetnsTarget {
  /** Same key, same namespace under the same name (a name re-used for a new namespace differs). */
  key: string;
  /** For output: NAME for /var/run/netns/NAME (given or found there), else the path; null for natwatch's own. */
  name: string | null;
  /** The nsfs path to open; null for natwatch's own. */
  path: string | null;
  /** Found by `all` (let go when it disappears) rather than given. */
  found: boolean;
}

export interface FollowOptions {
  /** Lists the mounted namespaces (tests inject one). */
  list?: () => NetnsEntry[];
  clock?: Clock;
  /** Re-scan interval; default 1000 ms. */
  intervalMs?: number;
}

/**
 * The spec a library caller's `netns` option means: one value, a list, or none (natwatch's own);
 * '' is natwatch's own too. `exclude` only with `all`.
 */
export function netnsSpec(netns: string | null | undefined | ReadonlyArray<string | null>, exclude: readonly string[] = []): NetnsSpec {
  const given = netns === undefined || netns === null ? [null] : typeof netns === 'string' ? [netns] : [...netns];
  const values = given.length > 0 ? given.map((v) => (v === '' ? null : v)) : [null];
  if (exclude.length > 0 && !values.includes(ALL_NETNS)) throw new UsageError(`--netns-exclude: only with --netns ${ALL_NETNS}`);
  return { netns: values, exclude };
}

const inode = (path: string): number => {
  try {
    return statSync(path).ino;
  } catch {
    return 0; // the start of its pipeline says what is wrong with it
  }
};

export class NamespaceFollower {
  /** Whether the spec has `all`: the set can change while running. */
  readonly following: boolean;
  /** Several values, or `all`: output names the namespace each message is about. */
  readonly several: boolean;
  /** For output: the one namespace's name (null: natwatch's own), or with several the values joined by ','. */
  readonly label: string | null;
  private readonly exclude: RegExp[];
  private readonly list: () => NetnsEntry[];
  private readonly clock: Clock;
  private timer: unknown = null;
  private watcher: FSWatcher | null = null;

  constructor(
    private readonly spec: NetnsSpec,
    private readonly opts: FollowOptions = {},
  ) {
    this.following = spec.netns.includes(ALL_NETNS);
    this.several = spec.netns.length > 1 || this.following;
    const single = spec.netns[0] ?? null;
    this.label = this.several ? spec.netns.map((v) => v || '(own)').join(',') : single === null || single === '' ? null : netnsName(netnsPath(single)!);
    this.exclude = (spec.exclude ?? []).map(globRegExp);
    this.list = opts.list ?? (() => listNetns(NETNS_DIR));
    this.clock = opts.clock ?? systemClock;
  }

  /** The namespaces the spec means now, in order: explicit ones as given, then own, then found. */
  targets(): NetnsTarget[] {
    const out: NetnsTarget[] = [];
    const seen = new Set<number>();
    const own = ownNetns();
    let hasOwn = false;
    for (const v of this.spec.netns) {
      if (v === ALL_NETNS) continue;
      const path = netnsPath(v);
      if (path === null) {
        if (hasOwn) continue;
        hasOwn = true;
        seen.add(own.ino);
        out.push({ key: '=', name: null, path: null, found: false });
        continue;
      }
      if (out.some((t) => t.path === path)) continue;
      const ino = inode(path);
      if (ino) seen.add(ino);
      out.push({ key: `=${path}`, name: netnsName(path), path, found: false });
    }
    if (!this.following) return out;
    if (!hasOwn && !seen.has(own.ino)) out.push({ key: '=', name: null, path: null, found: true });
    seen.add(own.ino);
    // Excluded names first, then one name per namespace (the first in order): an excluded name
    // must not hide another name of the same namespace.
    for (const e of this.list()) {
      if (e.name === null || e.path === null || this.exclude.some((re) => re.test(e.name!)) || seen.has(e.ino)) continue;
      seen.add(e.ino);
      out.push({ key: `${e.name}\u0000${e.ino}`, name: e.name, path: e.path, found: true });
    }
    return out;
  }

  /**
   * Calls check (which reads targets() again) every intervalMs and as soon as the directory
   * changes. Only with `all`; a no-op otherwise.
   */
  start(check: () => void): void {
    if (!this.following || this.timer !== null) return;
    const run = (): void => check();
    this.timer = this.clock.setInterval(run, this.opts.intervalMs ?? 1000);
    if (this.opts.list) return;
    try {
      // `ip netns add` creates the file, then mounts the namespace on it (no event of its own):
      // look again shortly after. A deletion is seen at once.
      this.watcher = watch(NETNS_DIR, { persistent: false }, () => {
        run();
        setTimeout(run, 250).unref();
      });
      this.watcher.on('error', () => this.watcher?.close());
    } catch {
      // No directory yet (no namespace was ever added): the interval finds the first one.
    }
  }

  stop(): void {
    if (this.timer !== null) this.clock.clearInterval(this.timer);
    this.timer = null;
    this.watcher?.close();
    this.watcher = null;
  }
}
