// Network namespaces by name or path: the one place that resolves `--netns`, checks that a path
// is a namespace, names it in output, lists /var/run/netns for `--netns all`, and words the
// errors. Every command, the streamer, the sources and doctor use these.
import { readdirSync, statSync, type Stats } from 'node:fs';
import { basename, dirname } from 'node:path';
import { NatwatchError } from './errors.js';

/** Where `ip netns add NAME` bind-mounts a namespace (/run/netns is the same directory). */
export const NETNS_DIR = '/var/run/netns';

/**
 * `--netns NAME` means /var/run/netns/NAME (as `ip netns add` makes it); anything with a slash
 * is an nsfs path used as is. null: the caller's own namespace.
 */
export function netnsPath(value: string | null | undefined): string | null {
  if (value === undefined || value === null || value === '') return null;
  return value.includes('/') ? value : `${NETNS_DIR}/${value}`;
}

/** How output names a namespace path: NAME for one `ip netns add` made, else the path itself. */
export function netnsName(path: string): string {
  const dir = dirname(path);
  return dir === NETNS_DIR || dir === '/run/netns' ? basename(path) : path;
}

/** The one-line errors about a namespace, each with its code. */
export const netnsError = {
  missing: (path: string, cause?: unknown) =>
    new NatwatchError('ENETNS', `network namespace '${netnsName(path)}' not found (${path})`, cause === undefined ? undefined : { cause }),
  notNamespace: (path: string, cause?: unknown) =>
    new NatwatchError('ENETNS', `'${path}' is not a network namespace`, cause === undefined ? undefined : { cause }),
  denied: (path: string, cause?: unknown) =>
    new NatwatchError('EPERM', `need root to open network namespace ${path}`, cause === undefined ? undefined : { cause }),
};

let nsfsDev: number | null | undefined;

/** The device number of nsfs (every namespace file shares it), or null when unknown. */
function nsfs(): number | null {
  if (nsfsDev === undefined) {
    try {
      nsfsDev = statSync('/proc/self/ns/net').dev;
    } catch {
      nsfsDev = null;
    }
  }
  return nsfsDev;
}

/**
 * Whether stat results are those of a namespace file. A name that `ip netns add` has created but
 * not yet bind-mounted is an empty regular file on tmpfs: not one yet.
 */
function isNamespace(st: Stats): boolean {
  const dev = nsfs();
  return dev === null ? true : st.dev === dev;
}

/** Throws the one-line error when `path` is missing, not readable, or not a network namespace. */
export function checkNetns(path: string): void {
  let st: Stats;
  try {
    st = statSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') throw netnsError.denied(path, err);
    throw netnsError.missing(path, err);
  }
  if (!isNamespace(st)) throw netnsError.notNamespace(path);
}

/** A namespace found on disk: its name for output, its path, and its identity (nsfs inode). */
export interface NetnsEntry {
  name: string | null;
  path: string | null;
  ino: number;
}

/** natwatch's own namespace, as `--netns all` lists it first. */
export function ownNetns(): NetnsEntry {
  let ino = 0;
  try {
    ino = statSync('/proc/self/ns/net').ino;
  } catch {
    // no /proc: the own namespace cannot be told apart from the named ones
  }
  return { name: null, path: null, ino };
}

/**
 * The namespaces `ip netns add` made (mounted ones only), by name, sorted. Several names can be
 * one namespace (same inode): the caller decides which name counts (see NamespaceFollower).
 */
export function listNetns(dir = NETNS_DIR): NetnsEntry[] {
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return []; // no namespace was ever added: the directory does not exist yet
  }
  const out: NetnsEntry[] = [];
  for (const name of names) {
    const path = `${dir}/${name}`;
    let st: Stats;
    try {
      st = statSync(path);
    } catch {
      continue; // deleted meanwhile
    }
    if (!isNamespace(st)) continue;
    out.push({ name, path, ino: st.ino });
  }
  return out;
}

/** A shell-style glob (`*`, `?`, `[abc]`, `[!a-z]`) as an anchored RegExp; bad syntax is literal. */
export function globRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') re += '.*';
    else if (c === '?') re += '.';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 2);
      if (end < 0) {
        re += '\\[';
        continue;
      }
      let body = glob.slice(i + 1, end);
      const negate = body.startsWith('!') || body.startsWith('^');
      if (negate) body = body.slice(1);
      re += `[${negate ? '^' : ''}${body.replace(/[\\\]^]/g, '\\$&')}]`;
      i = end;
    } else re += c.replace(/[.+^${}()|\\/]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}
