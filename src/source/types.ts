// The boundary between sources (native netlink, fixtures, replay, synthetic generators) and
// everything downstream. Tracking, alerting, serving and the CLI depend on these types only,
// never on the addon.
import type { ConntrackEvent, KernelCounters, NflogEvent, NflogGroupStatus } from '../types.js';

/** Record kinds in a conntrack batch. DUMP records come from a table dump, not an event. */
export const enum CtKind {
  New = 1,
  Update = 2,
  Destroy = 3,
  Dump = 4,
}

/** include/uapi/linux/netfilter/nf_conntrack_common.h: enum ip_conntrack_status */
export const IPS_EXPECTED = 1 << 0;
export const IPS_SEEN_REPLY = 1 << 1;
export const IPS_ASSURED = 1 << 2;
export const IPS_CONFIRMED = 1 << 3;
export const IPS_SRC_NAT = 1 << 4;
export const IPS_DST_NAT = 1 << 5;
export const IPS_DYING = 1 << 9;

/** The four addresses of a conntrack record, in batch order (ConntrackView.addrWord). */
export const enum CtAddr {
  OrigSrc = 0,
  OrigDst = 1,
  ReplySrc = 2,
  ReplyDst = 3,
}

/**
 * A cursor over one batch of conntrack records. `seek(i)` moves it; numeric fields read
 * straight from the packed buffer, address strings are formatted only when asked for.
 * A view is valid only during the callback that received it (the next batch is written into
 * the same buffer): copy what you keep.
 */
export interface ConntrackView {
  readonly count: number;
  seek(i: number): this;
  readonly kind: CtKind;
  readonly id: number;
  readonly zone: number;
  /** 4 or 6 */
  readonly family: number;
  /** IP protocol number (6 tcp, 17 udp, 1 icmp, 58 icmpv6, ...). */
  readonly proto: number;
  readonly status: number;
  /** TCP state number (linux/netfilter/nf_conntrack_tcp.h), or -1 when absent. */
  readonly tcpState: number;
  readonly timeout: number;
  readonly mark: number;
  readonly origSport: number;
  readonly origDport: number;
  readonly replySport: number;
  readonly replyDport: number;
  origSrc(): string;
  origDst(): string;
  replySrc(): string;
  replyDst(): string;
  /**
   * Word w (0-3) of an address as an unsigned 32-bit number in network order (IPv4: word 0,
   * 192.0.2.1 → 0xc0000201): the tracker compares and interns addresses by number and formats
   * text only for a key it has not seen. Optional: without it the tracker reads the strings.
   */
  addrWord?(which: CtAddr, w: number): number;
  /** Receive time, ms since the epoch. */
  readonly tsMs: number;
  /** The `event` object of docs/protocol.md (allocates: for output paths, not for tracking). */
  toEvent(): ConntrackEvent;
}

/** A cursor over one batch of NFLOG packets; same lifetime rule as ConntrackView. */
export interface NflogView {
  readonly count: number;
  seek(i: number): this;
  readonly group: number;
  readonly family: number;
  readonly proto: number;
  readonly sport: number;
  readonly dport: number;
  readonly hook: number;
  readonly mark: number;
  readonly len: number;
  /** NFLOG per-group sequence number (NFULA_SEQ), or -1 when the kernel did not send one. */
  readonly seq: number;
  readonly tsMs: number;
  prefix(): string;
  src(): string;
  dst(): string;
  indev(): string | null;
  outdev(): string | null;
  toEvent(): NflogEvent;
}

/** Events the kernel produced that never reached us. Never silent: every source reports these. */
export interface LossReport {
  source: 'conntrack' | 'nflog';
  /** recv() returned ENOBUFS this many times since the previous report. */
  enobufs: number;
  /**
   * Events the kernel could not queue to our socket since the previous report: exact, the
   * socket's drop counter (SO_MEMINFO SK_MEMINFO_DROPS, = /proc/net/netlink Drops), where one
   * ENOBUFS can stand for thousands of events. 0 when unknown. For NFLOG it counts datagrams,
   * and the same packets also show as sequence gaps.
   */
  kernelDrops: number;
  /**
   * Events the kernel delivered but the reader lost: a datagram larger than its receive slot
   * (MSG_TRUNC) or a record with no memory for its batch. Loss like the others: re-dump.
   */
  dropped: number;
  /** NFLOG sequence numbers skipped. */
  seqGap: number;
}

export interface NamespaceLimits {
  /** net.netfilter.nf_conntrack_max */
  max: number;
  /** net.netfilter.nf_conntrack_buckets */
  buckets: number;
  /** net.ipv4.ip_local_port_range */
  localPortRange: [number, number];
  /** net.ipv4.ip_local_reserved_ports, expanded to [lo, hi] ranges. */
  reservedPorts: Array<[number, number]>;
}

export interface CounterSnapshot {
  /** Per-CPU stats summed over CPUs (cumulative since boot / namespace creation). */
  counters: KernelCounters;
  /** Live entries in the namespace's table. */
  count: number;
  limits: NamespaceLimits;
}

export interface SourceHandlers {
  conntrack(view: ConntrackView): void;
  nflog(view: NflogView): void;
  loss(report: LossReport): void;
  /**
   * A table dump begins / ends. Records of kind Dump arrive between the two, interleaved with
   * live events; the tracker reconciles them (see src/track).
   */
  dumpBegin(): void;
  dumpEnd(): void;
  error(err: Error): void;
  /** Something the operator should know that is not a failure (a group held elsewhere). */
  warn?(message: string): void;
}

export interface EventSource {
  /** Subscribe, then dump the table. Resolves once subscribed (the dump follows). */
  start(handlers: SourceHandlers): Promise<void>;
  /** Re-dump the table (after loss). dumpBegin/dumpEnd bracket it. */
  resync(): void;
  /**
   * Whether conntrack UPDATE events are wanted. Tracking needs only NEW and DESTROY (plus a
   * dump after loss); UPDATE is two thirds of a TCP connection's events, so a source that can
   * (the netlink one: NFNLGRP_CONNTRACK_UPDATE membership) receives it only while on. A source
   * without the method delivers whatever it has.
   */
  setUpdates?(on: boolean): void;
  /** The NFLOG groups this source was to bind, and whether it holds each now. */
  nflogGroups?(): NflogGroupStatus[];
  readCounters(): Promise<CounterSnapshot>;
  /** Effective receive buffer sizes, bytes, as the kernel granted them. */
  readonly rcvbuf: { conntrack: number; nflog: number };
  close(): Promise<void>;
}
