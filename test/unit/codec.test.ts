// The TypeScript codec alone (no addon): header validation, address text, names, limits.
import { describe, expect, it } from 'vitest';
import { addrText, CtBatchView, LAYOUT, readHeader } from '../../src/source/codec.js';
import { natOf, protoName, tcpStateName } from '../../src/source/names.js';
import { parseLimits } from '../../src/source/netlink-source.js';
import { formatLoss } from '../../src/source/format.js';
import { NatwatchError } from '../../src/errors.js';

function header(kind: number, count: number, recordSize: number, extra = 0): Buffer {
  const b = Buffer.alloc(LAYOUT.headerSize + count * recordSize + extra);
  b.writeUInt32LE(LAYOUT.magic, 0);
  b.writeUInt16LE(LAYOUT.version, 4);
  b[6] = kind;
  b.writeUInt32LE(count, 8);
  b.writeUInt32LE(recordSize, 12);
  return b;
}

function v6(text: string): string {
  // Expand a full 8-group address into bytes, then format.
  const b = Buffer.alloc(16);
  text.split(':').forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return addrText(new DataView(b.buffer, b.byteOffset, 16), 0, 6);
}

describe('codec', () => {
  it('reads a valid header and rejects foreign or short batches', () => {
    const b = header(1, 2, LAYOUT.ctRecordSize);
    b.writeUInt32LE(7, LAYOUT.hdrEnobufs);
    expect(readHeader(b)).toMatchObject({ kind: 1, count: 2, enobufs: 7, dropped: 0 });
    expect(() => readHeader(b.subarray(0, 20))).toThrow(NatwatchError);
    // A version-1 batch (40-byte header, no kernel drop count) from a stale build is refused.
    const wrongVersion = Buffer.from(b);
    wrongVersion.writeUInt16LE(1, 4);
    expect(() => readHeader(wrongVersion)).toThrow(/version 1; rebuild/);
    expect(() => readHeader(header(1, 3, LAYOUT.ctRecordSize).subarray(0, LAYOUT.headerSize + 2 * LAYOUT.ctRecordSize))).toThrow(/3 records/);
    expect(() => readHeader(header(1, 0, 99))).toThrow(/99-byte/);
  });

  it('reads the kernel drop count apart from the ENOBUFS count and the other loss fields', () => {
    const b = header(2, 0, LAYOUT.nlRecordSize);
    b.writeUInt32LE(3, LAYOUT.hdrEnobufs);
    b.writeUInt32LE(4, LAYOUT.hdrDropped);
    b.writeUInt32LE(5, LAYOUT.hdrSeqGap);
    b.writeUInt32LE(0xfffffffe, LAYOUT.hdrKernelDrops); // a u32, not an i32
    b.writeUInt32LE(6, LAYOUT.hdrForeign);
    expect(readHeader(b)).toMatchObject({ kind: 2, enobufs: 3, dropped: 4, seqGap: 5, kernelDrops: 0xfffffffe, foreign: 6, errno: 0 });
    // The field sits past the v1 header, 4-byte aligned; the header keeps records 8-aligned.
    expect(LAYOUT.hdrKernelDrops).toBeGreaterThanOrEqual(40);
    expect(LAYOUT.hdrKernelDrops % 4).toBe(0);
    expect(LAYOUT.headerSize % 8).toBe(0);
  });

  it('prints IPv6 the RFC 5952 way', () => {
    expect(v6('0:0:0:0:0:0:0:0')).toBe('::');
    expect(v6('0:0:0:0:0:0:0:1')).toBe('::1');
    expect(v6('2001:db8:0:0:0:0:0:0')).toBe('2001:db8::');
    expect(v6('2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1'); // first of equal runs
    expect(v6('2001:db8:0:1:1:1:1:1')).toBe('2001:db8:0:1:1:1:1:1'); // a single zero group stays
    expect(v6('2001:db8:1:0:0:0:0:5')).toBe('2001:db8:1::5');
    expect(v6('fe80:0:0:0:abcd:0:0:0')).toBe('fe80::abcd:0:0:0');
  });

  it('names protocols, TCP states (nf_conntrack_tcp.h order) and NAT from status bits', () => {
    expect([1, 6, 17, 47, 58, 132, 253].map(protoName)).toEqual(['icmp', 'tcp', 'udp', 'gre', 'icmpv6', 'sctp', '253']);
    expect([-1, 0, 1, 3, 7, 9].map(tcpStateName)).toEqual([null, 'NONE', 'SYN_SENT', 'ESTABLISHED', 'TIME_WAIT', 'SYN_SENT2']);
    expect([0, 0x10, 0x20, 0x30].map(natOf)).toEqual([null, 'snat', 'dnat', 'both']);
  });

  it('reads records by seek() and keeps dump records apart', () => {
    const b = header(1, 2, LAYOUT.ctRecordSize);
    const at = (i: number) => LAYOUT.headerSize + i * LAYOUT.ctRecordSize;
    b.writeUInt32LE(11, at(0) + LAYOUT.ctId);
    b[at(0) + LAYOUT.ctKind] = 4;
    b[at(0) + LAYOUT.ctFamily] = 4;
    b.writeUInt32LE(22, at(1) + LAYOUT.ctId);
    b[at(1) + LAYOUT.ctKind] = 3;
    b[at(1) + LAYOUT.ctFamily] = 4;
    const v = new CtBatchView().reset(b, 2);
    expect([v.seek(0).id, v.kind, v.seek(1).id, v.kind]).toEqual([11, 4, 22, 3]);
    expect(v.seek(0).toEvent().event).toBe('new');
    expect(v.seek(1).toEvent().event).toBe('destroy');
  });

  it('parses the namespace limits from /proc/sys text', () => {
    expect(parseLimits({ max: '262144\n', buckets: '65536\n', portRange: '32768\t60999\n', reserved: '1000-1010,2000\n' })).toEqual({
      max: 262144, buckets: 65536, localPortRange: [32768, 60999], reservedPorts: [[1000, 1010], [2000, 2000]],
    });
    expect(parseLimits({ max: null, buckets: null, portRange: null, reserved: '\n' })).toEqual({
      max: 0, buckets: 0, localPortRange: [32768, 60999], reservedPorts: [],
    });
  });

  it('words the stderr loss line per cause', () => {
    expect(formatLoss({ source: 'conntrack', enobufs: 3, kernelDrops: 0, dropped: 0, seqGap: 0 })).toBe('natwatch: conntrack events lost: 3 receive-buffer overflows (ENOBUFS)');
    expect(formatLoss({ source: 'conntrack', enobufs: 1, kernelDrops: 4120, dropped: 0, seqGap: 0 })).toBe(
      'natwatch: conntrack events lost: 4120 the kernel could not queue (socket drops), 1 receive-buffer overflow (ENOBUFS)',
    );
    expect(formatLoss({ source: 'nflog', enobufs: 1, kernelDrops: 0, dropped: 2, seqGap: 5 })).toBe(
      'natwatch: nflog events lost: 1 receive-buffer overflow (ENOBUFS), 2 lost in the reader (truncated datagram or no memory), 5 NFLOG sequence numbers skipped',
    );
  });
});
