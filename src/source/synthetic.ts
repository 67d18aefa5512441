// A fixture EventSource over plain arrays: tests and demos drive the tracker, the alert rules
// and the streamer through the same EventSource boundary as the native netlink source, without
// root or the addon. Batches are delivered synchronously, so a test controls ordering exactly.
import { addrWords, conntrackEvent, nflogEvent } from './codec.js';
import type { ConntrackEvent, KernelCounters, NflogEvent, Tuple } from '../types.js';
import {
  CtAddr,
  CtKind,
  IPS_SRC_NAT,
  type ConntrackView,
  type CounterSnapshot,
  type EventSource,
  type LossReport,
  type NflogView,
  type SourceHandlers,
} from './types.js';

export interface SynthCt {
  kind: CtKind;
  id: number;
  zone?: number;
  family?: 4 | 6;
  /** IP protocol number; 6 (tcp) by default. */
  proto?: number;
  status?: number;
  tcpState?: number;
  timeout?: number;
  mark?: number;
  orig: Tuple;
  reply: Tuple;
  tsMs?: number;
}

export interface SynthNflog {
  group: number;
  prefix?: string;
  family?: 4 | 6;
  proto?: number;
  src: string;
  dst: string;
  sport?: number;
  dport?: number;
  hook?: number;
  mark?: number;
  len?: number;
  seq?: number;
  indev?: string | null;
  outdev?: string | null;
  tsMs?: number;
}

/** A SNAT'd flow record: client src:sport → dst:dport, rewritten to natIp:natPort. */
export function snatFlow(
  kind: CtKind,
  id: number,
  f: { src: string; sport: number; dst: string; dport: number; natIp: string; natPort: number; proto?: number; family?: 4 | 6 },
): SynthCt {
  return {
    kind,
    id,
    proto: f.proto ?? 6,
    family: f.family ?? 4,
    status: IPS_SRC_NAT,
    orig: { src: f.src, dst: f.dst, sport: f.sport, dport: f.dport },
    reply: { src: f.dst, dst: f.natIp, sport: f.dport, dport: f.natPort },
  };
}

/** A flow without NAT (the host's own, or forwarded unchanged). */
export function plainFlow(
  kind: CtKind,
  id: number,
  f: { src: string; sport: number; dst: string; dport: number; proto?: number; family?: 4 | 6 },
): SynthCt {
  return {
    kind,
    id,
    proto: f.proto ?? 6,
    family: f.family ?? 4,
    status: 0,
    orig: { src: f.src, dst: f.dst, sport: f.sport, dport: f.dport },
    reply: { src: f.dst, dst: f.src, sport: f.dport, dport: f.sport },
  };
}

class ArrayCtView implements ConntrackView {
  private r!: SynthCt;
  constructor(private readonly recs: readonly SynthCt[], private readonly now: number) {}
  get count(): number { return this.recs.length; }
  seek(i: number): this { this.r = this.recs[i]!; return this; }
  get kind(): CtKind { return this.r.kind; }
  get id(): number { return this.r.id; }
  get zone(): number { return this.r.zone ?? 0; }
  get family(): number { return this.r.family ?? 4; }
  get proto(): number { return this.r.proto ?? 6; }
  get status(): number { return this.r.status ?? 0; }
  get tcpState(): number { return this.r.tcpState ?? -1; }
  get timeout(): number { return this.r.timeout ?? 0; }
  get mark(): number { return this.r.mark ?? 0; }
  get origSport(): number { return this.r.orig.sport; }
  get origDport(): number { return this.r.orig.dport; }
  get replySport(): number { return this.r.reply.sport; }
  get replyDport(): number { return this.r.reply.dport; }
  origSrc(): string { return this.r.orig.src; }
  origDst(): string { return this.r.orig.dst; }
  replySrc(): string { return this.r.reply.src; }
  replyDst(): string { return this.r.reply.dst; }
  addrWord(which: CtAddr, w: number): number {
    const r = this.r;
    const text = which === CtAddr.OrigSrc ? r.orig.src : which === CtAddr.OrigDst ? r.orig.dst : which === CtAddr.ReplySrc ? r.reply.src : r.reply.dst;
    return addrWords(text)?.[w] ?? 0;
  }
  get tsMs(): number { return this.r.tsMs ?? this.now; }
  toEvent(): ConntrackEvent { return conntrackEvent(this); }
}

class ArrayNflogView implements NflogView {
  private r!: SynthNflog;
  constructor(private readonly recs: readonly SynthNflog[], private readonly now: number) {}
  get count(): number { return this.recs.length; }
  seek(i: number): this { this.r = this.recs[i]!; return this; }
  get group(): number { return this.r.group; }
  get family(): number { return this.r.family ?? 4; }
  get proto(): number { return this.r.proto ?? 6; }
  get sport(): number { return this.r.sport ?? 0; }
  get dport(): number { return this.r.dport ?? 0; }
  get hook(): number { return this.r.hook ?? 0; }
  get mark(): number { return this.r.mark ?? 0; }
  get len(): number { return this.r.len ?? 60; }
  get seq(): number { return this.r.seq ?? -1; }
  get tsMs(): number { return this.r.tsMs ?? this.now; }
  prefix(): string { return this.r.prefix ?? ''; }
  src(): string { return this.r.src; }
  dst(): string { return this.r.dst; }
  indev(): string | null { return this.r.indev ?? null; }
  outdev(): string | null { return this.r.outdev ?? null; }
  toEvent(): NflogEvent { return nflogEvent(this); }
}

export function zeroCounters(): KernelCounters {
  return { found: 0, invalid: 0, insert: 0, insert_failed: 0, drop: 0, early_drop: 0, error: 0, search_restart: 0, clash_resolve: 0, chaintoolong: 0 };
}

export interface SyntheticSourceOptions {
  /** ms clock for records without tsMs. */
  now?: () => number;
  /**
   * When set, resync() replays this table as a dump (dumpBegin, Dump records, dumpEnd),
   * synchronously, as the kernel would after a loss.
   */
  table?: () => SynthCt[];
}

/** An EventSource a test drives by hand. */
export class SyntheticSource implements EventSource {
  readonly rcvbuf = { conntrack: 212992, nflog: 212992 };
  /** Mutable: tests change counters/count/limits and the next readCounters() returns them. */
  snapshot: CounterSnapshot = {
    counters: zeroCounters(),
    count: 0,
    limits: { max: 262144, buckets: 65536, localPortRange: [32768, 60999], reservedPorts: [] },
  };
  resyncs = 0;
  closed = false;
  private h: SourceHandlers | null = null;
  private readonly now: () => number;

  constructor(private readonly opts: SyntheticSourceOptions = {}) {
    this.now = opts.now ?? Date.now;
  }

  async start(handlers: SourceHandlers): Promise<void> {
    this.h = handlers;
  }

  get started(): boolean { return this.h !== null; }

  private handlers(): SourceHandlers {
    if (!this.h) throw new Error('synthetic source not started');
    return this.h;
  }

  conntrack(recs: readonly SynthCt[]): void {
    if (recs.length > 0) this.handlers().conntrack(new ArrayCtView(recs, this.now()));
  }

  nflog(recs: readonly SynthNflog[]): void {
    if (recs.length > 0) this.handlers().nflog(new ArrayNflogView(recs, this.now()));
  }

  loss(r: Partial<LossReport> & { source: LossReport['source'] }): void {
    this.handlers().loss({ enobufs: 0, kernelDrops: 0, dropped: 0, seqGap: 0, ...r });
  }

  dumpBegin(): void { this.handlers().dumpBegin(); }
  dumpEnd(): void { this.handlers().dumpEnd(); }
  error(err: Error): void { this.handlers().error(err); }

  /** A whole dump: begin, the records as kind Dump, end. */
  dump(recs: readonly SynthCt[]): void {
    this.dumpBegin();
    this.conntrack(recs.map((r) => ({ ...r, kind: CtKind.Dump })));
    this.dumpEnd();
  }

  resync(): void {
    this.resyncs++;
    if (this.opts.table && this.h) this.dump(this.opts.table());
  }

  async readCounters(): Promise<CounterSnapshot> {
    const s = this.snapshot;
    return { counters: { ...s.counters }, count: s.count, limits: { ...s.limits } };
  }

  async close(): Promise<void> {
    this.closed = true;
    this.h = null;
  }
}
