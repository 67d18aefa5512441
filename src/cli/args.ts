// Flag parsing shared by the subcommands: node's own util.parseArgs, with every failure turned
// into a UsageError that names the flag and the bad value.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { UsageError } from '../errors.js';

/** parseArgs (strict by default) whose errors become UsageErrors. */
export function parse<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs<T>(config);
  } catch (err) {
    // parseArgs messages are already one line and name the flag ("Unknown option '--x'").
    throw new UsageError(String((err as Error).message).split('\n')[0]!);
  }
}

export { netnsPath } from '../netns.js';

/**
 * `--netns` (repeatable: a name, a path, or `all`) and `--netns-exclude GLOB` (repeatable, only
 * with `all`), checked; values stay as given (output names namespaces by them).
 */
export function netnsFlags(netns: string[] | undefined, exclude: string[] | undefined): { netns: string[]; exclude: string[] } {
  const values = netns ?? [];
  for (const v of values) if (v === '') throw new UsageError('--netns: empty name');
  const ex = exclude ?? [];
  if (ex.length > 0 && !values.includes('all')) throw new UsageError('--netns-exclude: only with --netns all');
  for (const g of ex) if (g === '' || g.includes('/')) throw new UsageError(`--netns-exclude: '${g}' is not a name pattern (a glob such as 'cni-*')`);
  return { netns: values, exclude: ex };
}

export function intFlag(flag: string, value: string | undefined, min: number, max: number): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new UsageError(`--${flag}: '${value}' is not a number`);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`--${flag}: ${n} is out of range ${min}-${max}`);
  return n;
}

export function groupsFlag(values: string[] | undefined): number[] {
  return (values ?? []).map((v) => intFlag('nflog-group', v, 0, 65535)!);
}

/** `A-B` port range. */
export function portRangeFlag(flag: string, value: string | undefined): [number, number] | undefined {
  if (value === undefined) return undefined;
  const m = /^(\d+)-(\d+)$/.exec(value);
  if (!m) throw new UsageError(`--${flag}: '${value}' is not a port range A-B`);
  const lo = Number(m[1]);
  const hi = Number(m[2]);
  if (lo < 1 || hi > 65535 || lo > hi) throw new UsageError(`--${flag}: '${value}' is not a port range within 1-65535`);
  return [lo, hi];
}

/** A byte size: `8192`, `64K`, `64M` (binary units), within [min, max]. */
export function sizeFlag(flag: string, value: unknown, min: number, max: number): number | undefined {
  if (value === undefined || value === null) return undefined;
  const m = /^(\d+)([KkMmGg]?)$/.exec(String(value));
  if (!m) throw new UsageError(`--${flag}: '${String(value)}' is not a size (e.g. 8192, 256K, 64M)`);
  const n = Number(m[1]) * ({ '': 1, k: 1 << 10, m: 1 << 20, g: 1 << 30 } as Record<string, number>)[m[2]!.toLowerCase()]!;
  if (n < min || n > max) throw new UsageError(`--${flag}: ${String(value)} is out of range ${min}-${max} bytes`);
  return n;
}

/** SO_RCVBUFFORCE bounds: the kernel doubles the value and caps it at INT_MAX. */
export const RCVBUF_MIN = 4096;
export const RCVBUF_MAX = 1 << 30;
