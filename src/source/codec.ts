// Reads the packed batches the native reader produces (native/batch-layout.h). The LAYOUT block
// mirrors that header; test/unit/native-layout.test.ts pins the two against each other.
// Views are cursors: numeric fields read straight from the buffer, strings only when asked.
import { NatwatchError } from '../errors.js';
import type { ConntrackEvent, KernelCounters, NflogEvent } from '../types.js';
import { CtAddr, CtKind, type ConntrackView, type NflogView } from './types.js';
import { IPPROTO_TCP, natOf, protoName, tcpStateName } from './names.js';
import { addrWords, formatGroups } from './ip.js';

export const LAYOUT = {
  magic: 0x3142574e, // "NWB1"
  version: 4,
  kindConntrack: 1,
  kindNflog: 2,
  kindStats: 3,
  flagDumpBegin: 1,
  flagDumpEnd: 2,
  flagDumpError: 8,

  headerSize: 48,
  hdrMagic: 0,
  hdrVersion: 4,
  hdrKind: 6,
  hdrFlags: 7,
  hdrCount: 8,
  hdrRecordSize: 12,
  hdrEnobufs: 16,
  hdrDropped: 20,
  hdrSeqGap: 24,
  hdrDecodeErrors: 28,
  hdrUnknownAttrs: 32,
  hdrErrno: 36,
  hdrKernelDrops: 40,
  hdrForeign: 44,

  ctTs: 0,
  ctId: 8,
  ctStatus: 12,
  ctTimeout: 16,
  ctMark: 20,
  ctZone: 24,
  ctKind: 26,
  ctFamily: 27,
  ctProto: 28,
  ctTcpState: 29,
  ctOrigSport: 32,
  ctOrigDport: 34,
  ctReplySport: 36,
  ctReplyDport: 38,
  ctOrigSrc: 40,
  ctOrigDst: 56,
  ctReplySrc: 72,
  ctReplyDst: 88,
  ctRecordSize: 104,

  nlTs: 0,
  nlSeq: 8,
  nlMark: 12,
  nlLen: 16,
  nlGroup: 20,
  nlFamily: 22,
  nlProto: 23,
  nlSport: 24,
  nlDport: 26,
  nlHook: 28,
  nlFlags: 29,
  nlPrefixLen: 30,
  nlIndex: 32,
  nlOutdex: 36,
  nlSrc: 40,
  nlDst: 56,
  nlIndevName: 72,
  nlOutdevName: 88,
  nlPrefix: 104,
  nlPrefixMax: 128,
  nlRecordSize: 232,
  nlFlagSeq: 1,
  nlFlagIndev: 2,
  nlFlagOutdev: 4,

  // Stats record: f64 sums, CTA_STATS_* in this order.
  stFound: 0,
  stInvalid: 8,
  stInsert: 16,
  stInsertFailed: 24,
  stDrop: 32,
  stEarlyDrop: 40,
  stError: 48,
  stSearchRestart: 56,
  stClashResolve: 64,
  stChainTooLong: 72,
  stCpus: 80,
  stCount: 88,
  stRecordSize: 96,
} as const;

export const BATCH_CONNTRACK = LAYOUT.kindConntrack;
export const BATCH_NFLOG = LAYOUT.kindNflog;
export const BATCH_STATS = LAYOUT.kindStats;

export const FLAG_DUMP_BEGIN = LAYOUT.flagDumpBegin;
export const FLAG_DUMP_END = LAYOUT.flagDumpEnd;
export const FLAG_DUMP_ERROR = LAYOUT.flagDumpError;

const NL_FLAG_SEQ = LAYOUT.nlFlagSeq;
const NL_FLAG_INDEV = LAYOUT.nlFlagIndev;
const NL_FLAG_OUTDEV = LAYOUT.nlFlagOutdev;

export interface BatchHeader {
  kind: number;
  flags: number;
  count: number;
  recordSize: number;
  /** recv() ENOBUFS returns (each one stands for one or many lost events). */
  enobufs: number;
  /** Events the kernel could not queue to the socket (SO_MEMINFO drops delta), exact. */
  kernelDrops: number;
  /** Events the reader lost itself: a truncated datagram (MSG_TRUNC), no memory for a batch. */
  dropped: number;
  seqGap: number;
  /** Netlink messages dropped because a process, not the kernel, sent them. */
  foreign: number;
  decodeErrors: number;
  unknownAttrs: number;
  /** errno of a reader-side failure (a dump that failed), 0 none. */
  errno: number;
}

const RECORD_SIZE: Record<number, number> = {
  [BATCH_CONNTRACK]: LAYOUT.ctRecordSize,
  [BATCH_NFLOG]: LAYOUT.nlRecordSize,
  [BATCH_STATS]: LAYOUT.stRecordSize,
};

function dataView(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** Validates and reads a batch header; a batch from another layout version is an error. */
export function readHeader(buf: Uint8Array): BatchHeader {
  if (buf.byteLength < LAYOUT.headerSize) throw badBatch(`${buf.byteLength} bytes`);
  const dv = dataView(buf);
  const magic = dv.getUint32(LAYOUT.hdrMagic, true);
  const version = dv.getUint16(LAYOUT.hdrVersion, true);
  if (magic !== LAYOUT.magic || version !== LAYOUT.version) {
    throw badBatch(`magic 0x${magic.toString(16)} version ${version}; rebuild the addon ('npx node-gyp rebuild')`);
  }
  const h: BatchHeader = {
    kind: dv.getUint8(LAYOUT.hdrKind),
    flags: dv.getUint8(LAYOUT.hdrFlags),
    count: dv.getUint32(LAYOUT.hdrCount, true),
    recordSize: dv.getUint32(LAYOUT.hdrRecordSize, true),
    enobufs: dv.getUint32(LAYOUT.hdrEnobufs, true),
    kernelDrops: dv.getUint32(LAYOUT.hdrKernelDrops, true),
    dropped: dv.getUint32(LAYOUT.hdrDropped, true),
    seqGap: dv.getUint32(LAYOUT.hdrSeqGap, true),
    foreign: dv.getUint32(LAYOUT.hdrForeign, true),
    decodeErrors: dv.getUint32(LAYOUT.hdrDecodeErrors, true),
    unknownAttrs: dv.getUint32(LAYOUT.hdrUnknownAttrs, true),
    errno: dv.getUint32(LAYOUT.hdrErrno, true),
  };
  if (RECORD_SIZE[h.kind] !== h.recordSize) throw badBatch(`kind ${h.kind} with ${h.recordSize}-byte records`);
  if (LAYOUT.headerSize + h.count * h.recordSize > buf.byteLength) throw badBatch(`${h.count} records in ${buf.byteLength} bytes`);
  return h;
}

function badBatch(why: string): NatwatchError {
  return new NatwatchError('ENATIVE', `malformed batch from the native addon: ${why}`);
}

// --- address text ---------------------------------------------------------------------------

function ipv4(dv: DataView, off: number): string {
  return `${dv.getUint8(off)}.${dv.getUint8(off + 1)}.${dv.getUint8(off + 2)}.${dv.getUint8(off + 3)}`;
}

/** RFC 5952 text (ip.ts formatGroups: the one formatter). */
function ipv6(dv: DataView, off: number): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(dv.getUint16(off + i * 2, false));
  return formatGroups(g);
}

export function addrText(dv: DataView, off: number, family: number): string {
  return family === 6 ? ipv6(dv, off) : ipv4(dv, off);
}

/** Text → 32-bit words (ip.ts, the one address parser); re-exported for the views' callers. */
export { addrWords };

// --- event objects --------------------------------------------------------------------------

/** Event names by CtKind; a dump record reads as 'new' (the flow is new to the reader). */
const EVENTS = [null, 'new', 'update', 'destroy', 'new'] as const;

const utf8 = new TextDecoder();

// Records of one datagram share a receive time: format each distinct time once.
let lastMs = NaN;
let lastIso = '';
function isoOf(ms: number): string {
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}

/** The conntrack `event` object of docs/protocol.md from any view (this codec's, the synthetic source's). */
export function conntrackEvent(v: ConntrackView): ConntrackEvent {
  return {
    type: 'event',
    source: 'conntrack',
    netns: null,
    event: EVENTS[v.kind] ?? 'update',
    id: v.id,
    ts: isoOf(v.tsMs),
    family: v.family === 6 ? 'ipv6' : 'ipv4',
    proto: protoName(v.proto),
    orig: { src: v.origSrc(), dst: v.origDst(), sport: v.origSport, dport: v.origDport },
    reply: { src: v.replySrc(), dst: v.replyDst(), sport: v.replySport, dport: v.replyDport },
    state: v.proto === IPPROTO_TCP ? tcpStateName(v.tcpState) : null,
    nat: natOf(v.status),
    timeout: v.timeout,
    mark: v.mark,
    zone: v.zone,
  };
}

/** The NFLOG `event` object of docs/protocol.md from any view. */
export function nflogEvent(v: NflogView): NflogEvent {
  return {
    type: 'event',
    source: 'nflog',
    netns: null,
    ts: isoOf(v.tsMs),
    group: v.group,
    prefix: v.prefix(),
    family: v.family === 6 ? 'ipv6' : 'ipv4',
    proto: protoName(v.proto),
    src: v.src(),
    dst: v.dst(),
    sport: v.sport,
    dport: v.dport,
    indev: v.indev(),
    outdev: v.outdev(),
    hook: v.hook,
    mark: v.mark,
    len: v.len,
  };
}

// --- views ----------------------------------------------------------------------------------

/** A cursor over a conntrack batch. reset() points it at the next batch (no allocation). */
export class CtBatchView implements ConntrackView {
  count = 0;
  private dv: DataView = new DataView(new ArrayBuffer(0));
  private base = 0;

  reset(buf: Uint8Array, count: number): this {
    this.dv = dataView(buf);
    this.count = count;
    this.base = LAYOUT.headerSize;
    return this;
  }
  seek(i: number): this {
    this.base = LAYOUT.headerSize + i * LAYOUT.ctRecordSize;
    return this;
  }
  get kind(): CtKind { return this.dv.getUint8(this.base + LAYOUT.ctKind) as CtKind; }
  get id(): number { return this.dv.getUint32(this.base + LAYOUT.ctId, true); }
  get zone(): number { return this.dv.getUint16(this.base + LAYOUT.ctZone, true); }
  get family(): number { return this.dv.getUint8(this.base + LAYOUT.ctFamily); }
  get proto(): number { return this.dv.getUint8(this.base + LAYOUT.ctProto); }
  get status(): number { return this.dv.getUint32(this.base + LAYOUT.ctStatus, true); }
  get tcpState(): number { return this.dv.getInt8(this.base + LAYOUT.ctTcpState); }
  get timeout(): number { return this.dv.getUint32(this.base + LAYOUT.ctTimeout, true); }
  get mark(): number { return this.dv.getUint32(this.base + LAYOUT.ctMark, true); }
  get origSport(): number { return this.dv.getUint16(this.base + LAYOUT.ctOrigSport, true); }
  get origDport(): number { return this.dv.getUint16(this.base + LAYOUT.ctOrigDport, true); }
  get replySport(): number { return this.dv.getUint16(this.base + LAYOUT.ctReplySport, true); }
  get replyDport(): number { return this.dv.getUint16(this.base + LAYOUT.ctReplyDport, true); }
  get tsMs(): number { return this.dv.getFloat64(this.base + LAYOUT.ctTs, true); }
  origSrc(): string { return addrText(this.dv, this.base + LAYOUT.ctOrigSrc, this.family); }
  origDst(): string { return addrText(this.dv, this.base + LAYOUT.ctOrigDst, this.family); }
  replySrc(): string { return addrText(this.dv, this.base + LAYOUT.ctReplySrc, this.family); }
  replyDst(): string { return addrText(this.dv, this.base + LAYOUT.ctReplyDst, this.family); }
  /** The four 16-byte addresses follow each other from ctOrigSrc in CtAddr order. */
  addrWord(which: CtAddr, w: number): number {
    return this.dv.getUint32(this.base + LAYOUT.ctOrigSrc + which * 16 + w * 4, false);
  }

  toEvent(): ConntrackEvent { return conntrackEvent(this); }
}

/** A cursor over an NFLOG batch. */
export class NflogBatchView implements NflogView {
  count = 0;
  private buf: Uint8Array = new Uint8Array(0);
  private dv: DataView = new DataView(new ArrayBuffer(0));
  private base = 0;

  reset(buf: Uint8Array, count: number): this {
    this.buf = buf;
    this.dv = dataView(buf);
    this.count = count;
    this.base = LAYOUT.headerSize;
    return this;
  }
  seek(i: number): this {
    this.base = LAYOUT.headerSize + i * LAYOUT.nlRecordSize;
    return this;
  }
  private get flags(): number { return this.dv.getUint8(this.base + LAYOUT.nlFlags); }
  get group(): number { return this.dv.getUint16(this.base + LAYOUT.nlGroup, true); }
  get family(): number { return this.dv.getUint8(this.base + LAYOUT.nlFamily); }
  get proto(): number { return this.dv.getUint8(this.base + LAYOUT.nlProto); }
  get sport(): number { return this.dv.getUint16(this.base + LAYOUT.nlSport, true); }
  get dport(): number { return this.dv.getUint16(this.base + LAYOUT.nlDport, true); }
  get hook(): number { return this.dv.getUint8(this.base + LAYOUT.nlHook); }
  get mark(): number { return this.dv.getUint32(this.base + LAYOUT.nlMark, true); }
  get len(): number { return this.dv.getUint32(this.base + LAYOUT.nlLen, true); }
  get seq(): number {
    return this.flags & NL_FLAG_SEQ ? this.dv.getUint32(this.base + LAYOUT.nlSeq, true) : -1;
  }
  get tsMs(): number { return this.dv.getFloat64(this.base + LAYOUT.nlTs, true); }
  prefix(): string {
    const at = this.base + LAYOUT.nlPrefix;
    const n = this.dv.getUint8(this.base + LAYOUT.nlPrefixLen);
    return utf8.decode(this.buf.subarray(at, at + n));
  }
  src(): string { return addrText(this.dv, this.base + LAYOUT.nlSrc, this.family); }
  dst(): string { return addrText(this.dv, this.base + LAYOUT.nlDst, this.family); }
  indev(): string | null { return this.devName(NL_FLAG_INDEV, LAYOUT.nlIndevName, LAYOUT.nlIndex); }
  outdev(): string | null { return this.devName(NL_FLAG_OUTDEV, LAYOUT.nlOutdevName, LAYOUT.nlOutdex); }

  /** The interface name; its index as text when the name could not be resolved. */
  private devName(flag: number, nameOff: number, indexOff: number): string | null {
    if ((this.flags & flag) === 0) return null;
    const at = this.base + nameOff;
    let end = at;
    while (end < at + 16 && this.buf[end] !== 0) end++;
    if (end > at) return utf8.decode(this.buf.subarray(at, end));
    return String(this.dv.getUint32(this.base + indexOff, true));
  }

  toEvent(): NflogEvent { return nflogEvent(this); }
}

export interface StatsRecord {
  counters: KernelCounters;
  /** CPUs that answered IPCTNL_MSG_CT_GET_STATS_CPU. */
  cpus: number;
  /** Live entries (CTA_STATS_GLOBAL_ENTRIES). */
  count: number;
  /** Messages on the stats socket not sent by the kernel (skipped). */
  foreign: number;
}

const STAT_FIELDS: ReadonlyArray<readonly [keyof KernelCounters, number]> = [
  ['found', LAYOUT.stFound], ['invalid', LAYOUT.stInvalid], ['insert', LAYOUT.stInsert],
  ['insert_failed', LAYOUT.stInsertFailed], ['drop', LAYOUT.stDrop], ['early_drop', LAYOUT.stEarlyDrop],
  ['error', LAYOUT.stError], ['search_restart', LAYOUT.stSearchRestart], ['clash_resolve', LAYOUT.stClashResolve],
  ['chaintoolong', LAYOUT.stChainTooLong],
];

/** Reads a stats batch (kind 3). */
export function readStats(buf: Uint8Array): StatsRecord {
  const h = readHeader(buf);
  if (h.kind !== BATCH_STATS || h.count !== 1) throw badBatch(`expected one stats record, got kind ${h.kind} x${h.count}`);
  const dv = dataView(buf);
  const at = LAYOUT.headerSize;
  const counters = {} as KernelCounters;
  for (const [k, off] of STAT_FIELDS) counters[k] = dv.getFloat64(at + off, true);
  return { counters, cpus: dv.getFloat64(at + LAYOUT.stCpus, true), count: dv.getFloat64(at + LAYOUT.stCount, true), foreign: h.foreign };
}
