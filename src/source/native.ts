// The one file that loads the addon (native/, built by node-gyp into build/Release or shipped
// in prebuilds/) and declares its typed surface. Everything else takes an EventSource.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { constants } from 'node:os';
import { fileURLToPath } from 'node:url';
import { NatwatchError } from '../errors.js';
import { netnsError } from '../netns.js';

export interface NativeSourceOptions {
  /** nsfs path (/var/run/netns/NAME, /proc/PID/ns/net) or null for the current namespace. */
  netns: string | null;
  conntrack: boolean;
  /** Join NFNLGRP_CONNTRACK_UPDATE at start (setUpdates() changes it later). */
  updates: boolean;
  nflogGroups: number[];
  /** Requested receive buffer per event socket, bytes (SO_RCVBUFFORCE). */
  rcvbuf: number;
  batchRecords: number;
  /** Hand-off window while UPDATE events are on, and while only tracking (quietBatchMs). */
  batchMs: number;
  quietBatchMs: number;
  /** Dump the table right after subscribing. */
  dump: boolean;
  /** Batches queued towards JS; the reader waits while it is full. */
  queue: number;
  /** Receive slot per conntrack event datagram; 0 = default (4096). Tests shrink it. */
  slotBytes: number;
}

export interface NativeSysctls {
  max: string | null;
  buckets: string | null;
  portRange: string | null;
  reserved: string | null;
}

export interface NativeSource {
  /**
   * Opens, subscribes, binds, registers with the shared reader thread (starting it with the
   * first source); effective SO_RCVBUF sizes, and each NFLOG group's bind errno (0 = bound).
   */
  start(): { conntrack: number; nflog: number; groups: Array<{ group: number; errno: number }> };
  /** Retries the bind of a group whose first bind failed: errno, 0 = bound and read from now. */
  bindNflog(group: number): number;
  resync(): void;
  /** Joins / leaves the conntrack UPDATE group on the live event socket. */
  setUpdates(on: boolean): void;
  /** A stats batch (kind 3): per-CPU counters summed, and the global entry count. */
  readStats(): Buffer;
  /** How the reader receives conntrack events; null until it has set the source up. */
  receivePath(): 'io_uring' | 'recvmmsg' | null;
  readSysctls(): NativeSysctls;
  ref(): void;
  unref(): void;
  /** Stops and joins the reader thread, closes the sockets. Idempotent. */
  close(): void;
}

export type DecodeKind = 'conntrack' | 'dump' | 'nflog' | 'stats';

export interface CaptureOptions {
  netns: string | null;
  what: 'events' | 'dump' | 'nflog' | 'stats';
  groups?: number[];
  timeoutMs?: number;
  max?: number;
}

export interface NativeAddon {
  Source: new (opts: NativeSourceOptions, onBatch: (batch: Buffer) => void) => NativeSource;
  /** Runs the reader's decode path over one raw datagram and returns the batch. */
  decodeForTest(kind: DecodeKind, datagram: Uint8Array, tsMs?: number): Buffer;
  /** Raw datagrams from a namespace, for fixtures (scripts/capture-fixtures.mjs). */
  capture(opts: CaptureOptions): Promise<Buffer[]>;
  /** Test hook: a batch larger than `bytes` fails to reach JavaScript, as without memory (0 lifts it). */
  limitBatchPool(bytes: number): void;
  /** A namespace's /proc/net tables (allow-list: 'netlink', 'netfilter/nfnetlink_log'), read
   *  from inside it; null for a table that does not exist there. */
  readProcNet(netns: string | null, names: string[]): Record<string, string | null>;
  /** batch-layout.h offsets, to check against codec.ts. */
  layout: Record<string, number>;
  /** One-shot kernel facts read inside the namespace (kernel-facts.cc); see facts-codec.ts. */
  kernelFacts(opts: KernelFactsRequest): Promise<Buffer>;
  /** Change notifications (ruleset, addresses) on the event loop; onChange is not debounced. */
  watchKernel(opts: { netns: string | null; ruleset: boolean; addresses: boolean }, onChange: (kind: 'ruleset' | 'addresses') => void): { close(): void };
}

export interface KernelFactsRequest {
  netns: string | null;
  nft?: boolean;
  legacy?: boolean;
  rtnl?: boolean;
  diag?: boolean;
  /** Paths under /proc/sys, `net/...` only. */
  sysctls?: string[];
  /** Return the kernel bytes the decoders saw (fixtures, fuzz seeds) instead of the items. */
  raw?: boolean;
}

/** The package root: two levels up from both src/source and dist/source. */
export const PACKAGE_ROOT = fileURLToPath(new URL('../../', import.meta.url));

let cached: NativeAddon | null = null;

/** Loads the addon once; a missing build is a one-line ENATIVE error saying how to build it. */
export function loadNative(root: string = PACKAGE_ROOT): NativeAddon {
  if (cached && root === PACKAGE_ROOT) return cached;
  const require = createRequire(import.meta.url);
  let addon: NativeAddon;
  try {
    const load = require('node-gyp-build') as (dir: string) => NativeAddon;
    addon = load(root);
  } catch (err) {
    throw new NatwatchError(
      'ENATIVE',
      `native addon not built (${firstLine(err)}): run 'npm rebuild natwatch' or 'npx node-gyp rebuild' in ${root.replace(/\/$/, '')}`,
      { cause: err },
    );
  }
  if (root === PACKAGE_ROOT) cached = addon;
  return addon;
}

const CAP_NET_ADMIN = 12n; // linux/capability.h

/** Whether this process holds CAP_NET_ADMIN (effective set, /proc/self/status CapEff). */
function hasNetAdmin(): boolean {
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
    return m !== null && ((BigInt(`0x${m[1]}`) >> CAP_NET_ADMIN) & 1n) === 1n;
  } catch {
    return false;
  }
}

function firstLine(err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n')[0]!;
}

interface SysError extends Error {
  errno?: number;
  syscall?: string;
  group?: number;
}

const E = constants.errno;

/** errno number → its name (ENOBUFS), for one-line messages. */
export function errnoName(n: number): string {
  for (const [name, v] of Object.entries(E)) if (v === n) return name;
  return `errno ${n}`;
}

/** Native open/bind failures → the CLI's one-line errors (docs/protocol.md, Command line). */
export function mapNativeError(err: unknown, netns: string | null): Error {
  const e = err as SysError;
  const errno = typeof e?.errno === 'number' ? e.errno : 0;
  const syscall = e?.syscall ?? '';
  if (syscall === 'open' && netns !== null && (errno === E.ENOENT || errno === E.ENOTDIR)) return netnsError.missing(netns, err);
  if (syscall === 'setns' && errno === E.EPERM) {
    return new NatwatchError('EPERM', `need CAP_SYS_ADMIN to enter network namespace ${netns}`, { cause: err });
  }
  if (syscall === 'setns' && errno === E.EINVAL && netns !== null) return netnsError.notNamespace(netns, err);
  // A group held by another socket answers EPERM (EBUSY on old kernels), the same errno as a
  // missing capability: tell them apart by our own capabilities.
  if (syscall === 'nflog-bind' && (errno === E.EBUSY || (errno === E.EPERM && hasNetAdmin()))) {
    return new NatwatchError('EGROUPBUSY', `NFLOG group ${e.group} is already bound by another program (ulogd?)`, { cause: err });
  }
  if (errno === E.EPERM || errno === E.EACCES) {
    return new NatwatchError('EPERM', 'need CAP_NET_ADMIN to subscribe to conntrack events', { cause: err });
  }
  return new NatwatchError('ERUNTIME', `${firstLine(err)}`, { cause: err });
}
