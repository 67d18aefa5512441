// EventSource over the native netlink reader: conntrack events + table dumps, NFLOG packets,
// counters. The addon's reader thread batches records; this file turns each batch into handler
// calls (loss first, then dump brackets around the records) and keeps no per-event objects.
//
// Process lifetime: a started source is ref'd (like a listening server, it keeps Node alive:
// `natwatch events` waits on it); embedders call unref() to let the process exit while idle.
import { NatwatchError, UsageError } from '../errors.js';
import type { KernelCounters, NflogGroupStatus } from '../types.js';
import {
  BATCH_CONNTRACK,
  BATCH_NFLOG,
  CtBatchView,
  FLAG_DUMP_BEGIN,
  FLAG_DUMP_END,
  FLAG_DUMP_ERROR,
  NflogBatchView,
  readHeader,
  readStats,
} from './codec.js';
import { errnoName, loadNative, mapNativeError, type NativeAddon, type NativeSource, type NativeSysctls } from './native.js';
import type { CounterSnapshot, EventSource, NamespaceLimits, SourceHandlers } from './types.js';

export interface NetlinkSourceOptions {
  /** nsfs path (/var/run/netns/NAME) or null for the current namespace. */
  netns: string | null;
  /** NFLOG groups to bind (none by default). */
  nflogGroups?: number[];
  /**
   * The groups were chosen from the ruleset, not asked for: one that another program (ulogd)
   * holds does not fail start(); the source runs without it, says so once (handlers.warn) and
   * retries the bind every nflogRetryMs, taking the group over when the other program lets go.
   * Default false: a held group is an EGROUPBUSY error.
   */
  nflogBestEffort?: boolean;
  /** Retry interval for held groups, ms; default 30 000. */
  nflogRetryMs?: number;
  /** Receive buffer per event socket; default 64 MiB (SO_RCVBUFFORCE; the kernel doubles it). */
  rcvbufBytes?: number;
  /** Records per batch before it is handed over; default 4096. */
  batchRecords?: number;
  /** Longest a record waits in a partial batch while UPDATE events are on (someone reads
   *  events), ms; default 5. */
  batchMs?: number;
  /** The same while only tracking (NEW and DESTROY): tracking needs no 5 ms latency (rules run
   *  every 200 ms) and fewer, larger batches cost its JS thread less; default 100, or batchMs
   *  when that is given. The socket is still read every 25 ms at most (native kMaxParkMs). */
  quietBatchMs?: number;
  /** Dump the table after subscribing; default true. */
  dump?: boolean;
  /** Subscribe to conntrack events; default true (false: NFLOG only). */
  conntrack?: boolean;
  /** Conntrack UPDATE events too (NEW and DESTROY always); default false. setUpdates() toggles. */
  updates?: boolean;
  /** Batches queued towards JS; when full the reader waits (events wait in the socket
   *  buffer, where the kernel counts any overflow exactly); default 64. */
  queue?: number;
  /** Test hook: receive slot per conntrack event datagram, bytes (default 4096). A smaller one
   *  makes the kernel truncate events (MSG_TRUNC), which must count as lost. */
  slotBytes?: number;
  /** For tests: an addon other than the package's own build. */
  addon?: NativeAddon;
}

/** Counters of what the source saw, for /metrics and `events` summaries. */
export interface NetlinkSourceStats {
  batches: number;
  records: { conntrack: number; nflog: number };
  enobufs: { conntrack: number; nflog: number };
  /** Events the kernel could not queue to the event sockets (exact; /proc/net/netlink Drops). */
  kernelDrops: { conntrack: number; nflog: number };
  dropped: { conntrack: number; nflog: number };
  seqGap: number;
  /** Netlink messages dropped because a process, not the kernel, sent them to our sockets. */
  foreign: number;
  decodeErrors: number;
  unknownAttrs: number;
  /** Exceptions thrown by handlers (caught here, reported through handlers.error). */
  handlerErrors: number;
  /** How the reader receives conntrack events (docs/netlink-reader.md): io_uring, or recvmmsg
   *  where io_uring cannot be used or NATWATCH_NO_IO_URING=1; null before the reader set up. */
  readonly receive: 'io_uring' | 'recvmmsg' | null;
}

export interface NetlinkSource extends EventSource {
  readonly stats: NetlinkSourceStats;
  setUpdates(on: boolean): void;
  nflogGroups(): NflogGroupStatus[];
  ref(): void;
  unref(): void;
}

export function createNetlinkSource(opts: NetlinkSourceOptions): NetlinkSource {
  return new NativeNetlinkSource(opts);
}

const DEFAULT_RCVBUF = 64 << 20;
const DEFAULT_QUIET_BATCH_MS = 100;
/** How often a group another program holds is tried again (issue: take over within 30 s). */
export const NFLOG_RETRY_MS = 30_000;
const FOREIGN_REPORT_MS = 60_000;
/** native/records.h kMaxNflogGroups: the reader tracks sequence numbers for this many groups. */
const MAX_NFLOG_GROUPS = 32;

/** Distinct NFLOG groups, each a u16 as nfgenmsg.res_id carries it; a bad list is an error. */
function nflogGroups(groups: readonly number[]): number[] {
  const out = [...new Set(groups)];
  const bad = out.find((g) => !Number.isInteger(g) || g < 0 || g > 65535);
  if (bad !== undefined) throw new UsageError(`NFLOG group ${bad} is not a number in 0-65535`);
  if (out.length > MAX_NFLOG_GROUPS) throw new UsageError(`${out.length} NFLOG groups: at most ${MAX_NFLOG_GROUPS} per source`);
  return out;
}

class NativeNetlinkSource implements NetlinkSource {
  rcvbuf = { conntrack: 0, nflog: 0 };
  // receive: read from the reader when asked (it sets the channel up on its own thread).
  readonly stats: NetlinkSourceStats = Object.defineProperty(
    {
      batches: 0,
      records: { conntrack: 0, nflog: 0 },
      enobufs: { conntrack: 0, nflog: 0 },
      kernelDrops: { conntrack: 0, nflog: 0 },
      dropped: { conntrack: 0, nflog: 0 },
      seqGap: 0,
      foreign: 0,
      decodeErrors: 0,
      unknownAttrs: 0,
      handlerErrors: 0,
      receive: null,
    },
    'receive',
    { enumerable: true, get: () => this.native?.receivePath() ?? null },
  );
  private native: NativeSource | null = null;
  private handlers: SourceHandlers | null = null;
  private closed = false;
  private foreignSaidMs = -Infinity;
  private updates: boolean;
  private groups: NflogGroupStatus[] = [];
  private retryTimer: NodeJS.Timeout | null = null;
  private readonly ct = new CtBatchView();
  private readonly nl = new NflogBatchView();

  constructor(private readonly opts: NetlinkSourceOptions) {
    this.updates = opts.updates ?? false;
  }

  async start(handlers: SourceHandlers): Promise<void> {
    if (this.native || this.closed) throw new NatwatchError('ERUNTIME', 'source already started or closed');
    const groups = nflogGroups(this.opts.nflogGroups ?? []);
    const addon = this.opts.addon ?? loadNative();
    this.handlers = handlers;
    const native = new addon.Source(
      {
        netns: this.opts.netns,
        conntrack: this.opts.conntrack ?? true,
        updates: this.updates,
        nflogGroups: groups,
        rcvbuf: this.opts.rcvbufBytes ?? DEFAULT_RCVBUF,
        batchRecords: this.opts.batchRecords ?? 4096,
        batchMs: this.opts.batchMs ?? 5,
        quietBatchMs: this.opts.quietBatchMs ?? this.opts.batchMs ?? DEFAULT_QUIET_BATCH_MS,
        dump: this.opts.dump ?? true,
        queue: this.opts.queue ?? 64,
        slotBytes: this.opts.slotBytes ?? 0,
      },
      (batch) => this.onBatch(batch),
    );
    let unbound: Array<{ group: number; errno: number }>;
    try {
      const r = native.start();
      this.rcvbuf = { conntrack: r.conntrack, nflog: r.nflog };
      unbound = r.groups.filter((g) => g.errno !== 0);
      // Asked for explicitly (or not because another program holds it): an error, as before.
      const fatal = unbound.find((g) => !this.opts.nflogBestEffort || nflogBindError(g, this.opts.netns).code !== 'EGROUPBUSY');
      if (fatal) throw nflogBindError(fatal, this.opts.netns);
      this.groups = r.groups.map((g) => ({ group: g.group, bound: g.errno === 0, reason: g.errno === 0 ? null : HELD }));
    } catch (err) {
      native.close();
      throw err instanceof NatwatchError ? err : mapNativeError(err, this.opts.netns);
    }
    this.native = native;
    if (unbound.length > 0) {
      const retryMs = this.opts.nflogRetryMs ?? NFLOG_RETRY_MS;
      for (const g of unbound) {
        const text = `NFLOG group ${g.group} is held by another program (ulogd?): running without its packets, retrying the bind every ${Math.round(retryMs / 1000)} s`;
        if (handlers.warn) handlers.warn(text);
        else handlers.error(new NatwatchError('EGROUPBUSY', text));
      }
      this.retryTimer = setInterval(() => this.retryGroups(), retryMs);
      this.retryTimer.unref();
    }
  }

  resync(): void {
    this.native?.resync();
  }

  nflogGroups(): NflogGroupStatus[] {
    return this.groups.map((g) => ({ ...g }));
  }

  /** Tries each group another program held; one that binds is read from now on. */
  private retryGroups(): void {
    const native = this.native;
    if (!native || this.closed) return;
    let left = 0;
    for (const g of this.groups) {
      if (g.bound) continue;
      const errno = native.bindNflog(g.group);
      if (errno === 0) {
        g.bound = true;
        g.reason = null;
        this.handlers?.warn?.(`NFLOG group ${g.group} is bound now (the other program let go)`);
      } else {
        g.reason = nflogBindError({ group: g.group, errno }, this.opts.netns).code === 'EGROUPBUSY' ? HELD : `bind failed: ${errnoName(errno)}`;
        left++;
      }
    }
    if (left === 0 && this.retryTimer) {
      clearInterval(this.retryTimer);
      this.retryTimer = null;
    }
  }

  setUpdates(on: boolean): void {
    if (on === this.updates) return;
    try {
      this.native?.setUpdates(on);
      this.updates = on;
    } catch (err) {
      this.handlers?.error(mapNativeError(err, this.opts.netns));
    }
  }

  async readCounters(): Promise<CounterSnapshot> {
    const native = this.native;
    if (!native) throw new NatwatchError('ERUNTIME', 'source not started');
    let stats;
    try {
      stats = readStats(native.readStats());
    } catch (err) {
      throw mapNativeError(err, this.opts.netns);
    }
    if (stats.foreign > 0 && this.handlers) this.onForeign(stats.foreign, this.handlers);
    return { counters: stats.counters satisfies KernelCounters, count: stats.count, limits: parseLimits(native.readSysctls()) };
  }

  ref(): void {
    this.native?.ref();
  }

  unref(): void {
    this.native?.unref();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer) clearInterval(this.retryTimer);
    this.retryTimer = null;
    this.native?.close(); // joins the reader; batches still queued are ignored below
    this.native = null;
  }

  /**
   * Messages a process (not the kernel) wrote to our sockets were dropped: counted, and said at
   * most once a minute (a flood must not become a log flood).
   */
  private onForeign(n: number, h: SourceHandlers): void {
    this.stats.foreign += n;
    const now = Date.now();
    if (now - this.foreignSaidMs < FOREIGN_REPORT_MS) return;
    this.foreignSaidMs = now;
    h.error(new NatwatchError('ERUNTIME', `ignored ${this.stats.foreign} netlink message(s) sent to natwatch's sockets by a process other than the kernel`));
  }

  private onBatch(batch: Buffer): void {
    const h = this.handlers;
    if (!h || this.closed) return;
    try {
      const hdr = readHeader(batch);
      const s = this.stats;
      s.batches++;
      s.decodeErrors += hdr.decodeErrors;
      s.unknownAttrs += hdr.unknownAttrs;
      if (hdr.foreign > 0) this.onForeign(hdr.foreign, h);
      if (hdr.kind === BATCH_CONNTRACK) {
        s.records.conntrack += hdr.count;
        s.enobufs.conntrack += hdr.enobufs;
        s.kernelDrops.conntrack += hdr.kernelDrops;
        s.dropped.conntrack += hdr.dropped;
        if (hdr.enobufs || hdr.kernelDrops || hdr.dropped) {
          h.loss({ source: 'conntrack', enobufs: hdr.enobufs, kernelDrops: hdr.kernelDrops, dropped: hdr.dropped, seqGap: 0 });
        }
        if (hdr.flags & FLAG_DUMP_BEGIN) h.dumpBegin();
        if (hdr.count > 0) h.conntrack(this.ct.reset(batch, hdr.count));
        if (hdr.flags & FLAG_DUMP_END) h.dumpEnd();
        if (hdr.flags & FLAG_DUMP_ERROR) {
          h.error(new NatwatchError('ERUNTIME', `conntrack table dump failed: ${errnoName(hdr.errno)}`));
        }
      } else if (hdr.kind === BATCH_NFLOG) {
        s.records.nflog += hdr.count;
        s.enobufs.nflog += hdr.enobufs;
        s.kernelDrops.nflog += hdr.kernelDrops;
        s.dropped.nflog += hdr.dropped;
        s.seqGap += hdr.seqGap;
        if (hdr.enobufs || hdr.kernelDrops || hdr.dropped || hdr.seqGap) {
          h.loss({ source: 'nflog', enobufs: hdr.enobufs, kernelDrops: hdr.kernelDrops, dropped: hdr.dropped, seqGap: hdr.seqGap });
        }
        if (hdr.count > 0) h.nflog(this.nl.reset(batch, hdr.count));
      }
    } catch (err) {
      this.stats.handlerErrors++;
      try {
        h.error(err as Error);
      } catch {
        // an error handler that throws has nowhere left to report to; counted above
      }
    }
  }
}

const HELD = 'held by another program';

/** A failed NFLOG bind as the one-line error the CLI prints (EGROUPBUSY when held elsewhere). */
function nflogBindError(g: { group: number; errno: number }, netns: string | null): NatwatchError {
  const e = Object.assign(new Error(`nflog-bind: ${errnoName(g.errno)}`), { errno: g.errno, syscall: 'nflog-bind', group: g.group });
  return mapNativeError(e, netns) as NatwatchError;
}

function num(s: string | null): number {
  const n = s === null ? NaN : Number(s.trim());
  return Number.isFinite(n) ? n : 0;
}

/** /proc/sys values of the namespace → NamespaceLimits (missing files read as 0 / defaults). */
export function parseLimits(s: NativeSysctls): NamespaceLimits {
  const range = (s.portRange ?? '').trim().split(/\s+/).map(Number);
  const localPortRange: [number, number] =
    range.length === 2 && range.every(Number.isFinite) ? [range[0]!, range[1]!] : [32768, 60999];
  const reservedPorts: Array<[number, number]> = [];
  for (const part of (s.reserved ?? '').trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (m) reservedPorts.push([Number(m[1]), Number(m[2] ?? m[1])]);
  }
  return { max: num(s.max), buckets: num(s.buckets), localPortRange, reservedPorts };
}
