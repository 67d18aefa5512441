// Pins the batch layout on both sides: batch-layout.h (exported by the addon) against codec.ts's
// LAYOUT, and a C++-produced batch read byte by byte at the TypeScript offsets.
import { describe, expect, it } from 'vitest';
import { CtBatchView, LAYOUT, readHeader } from '../../src/source/codec.js';
import { CtAddr } from '../../src/source/types.js';
import { loadNative } from '../../src/source/native.js';
import { readFixture } from '../fixtures/fixtures.js';

const addon = loadNative();

describe('batch layout', () => {
  it('batch-layout.h and codec.ts agree on every exported constant', () => {
    const native = addon.layout;
    expect(Object.keys(native).length).toBeGreaterThan(20);
    expect(Object.keys(LAYOUT).sort()).toEqual(Object.keys(native).sort());
    for (const [k, v] of Object.entries(native)) {
      expect([k, LAYOUT[k as keyof typeof LAYOUT]]).toEqual([k, v]);
    }
  });

  it('pins the v4 header: the numbers themselves, so a change on both sides still needs a version bump', () => {
    const header = Object.fromEntries(Object.entries(addon.layout).filter(([k]) => /^(hdr|flag|kind|magic|version|headerSize)/.test(k)));
    expect(header).toEqual({
      magic: 0x3142574e,
      version: 4,
      kindConntrack: 1,
      kindNflog: 2,
      kindStats: 3,
      // v4: no "dump end before" flag (4): the reader waits for JS instead of dropping a batch.
      flagDumpBegin: 1,
      flagDumpEnd: 2,
      flagDumpError: 8,
      hdrMagic: 0,
      hdrVersion: 4,
      hdrKind: 6,
      hdrFlags: 7,
      hdrCount: 8,
      hdrRecordSize: 12,
      hdrEnobufs: 16,
      hdrDropped: 20, // v4: events lost in the reader (MSG_TRUNC, no memory), not queue drops
      hdrSeqGap: 24,
      hdrDecodeErrors: 28,
      hdrUnknownAttrs: 32,
      hdrErrno: 36,
      hdrKernelDrops: 40,
      hdrForeign: 44, // v3: datagrams from a sender other than the kernel
      headerSize: 48,
    });
    expect([LAYOUT.ctRecordSize, LAYOUT.nlRecordSize, LAYOUT.stRecordSize]).toEqual([104, 232, 96]);
    expect('flagDumpEndBefore' in LAYOUT).toBe(false);
  });

  it('a C++ batch has its fields at the TypeScript offsets', () => {
    const f = readFixture('ct-new-tcp-snat');
    const b = addon.decodeForTest('conntrack', f.bytes, 1234.5);
    expect(b.length).toBe(LAYOUT.headerSize + LAYOUT.ctRecordSize);
    expect(b.readUInt32LE(LAYOUT.hdrMagic)).toBe(LAYOUT.magic);
    expect(b.subarray(0, 4).toString('latin1')).toBe('NWB1');
    expect(b.readUInt16LE(LAYOUT.hdrVersion)).toBe(LAYOUT.version);
    expect(b[LAYOUT.hdrKind]).toBe(1);
    expect(b.readUInt32LE(LAYOUT.hdrCount)).toBe(1);
    expect(b.readUInt32LE(LAYOUT.hdrRecordSize)).toBe(LAYOUT.ctRecordSize);
    // v2: the kernel's drop count (none for a decoded fixture), records start past it.
    expect(addon.layout.hdrKernelDrops).toBe(LAYOUT.hdrKernelDrops);
    expect(b.readUInt32LE(LAYOUT.hdrKernelDrops)).toBe(0);
    expect(LAYOUT.hdrKernelDrops + 4).toBeLessThanOrEqual(LAYOUT.headerSize);
    const r = LAYOUT.headerSize;
    expect(b.readDoubleLE(r + LAYOUT.ctTs)).toBe(1234.5);
    expect(b[r + LAYOUT.ctKind]).toBe(1);
    expect(b[r + LAYOUT.ctFamily]).toBe(4);
    expect(b[r + LAYOUT.ctProto]).toBe(6);
    expect(b.readInt8(r + LAYOUT.ctTcpState)).toBe(1);
    // 192.0.2.5 -> 198.51.100.8, reply to the router's outside address 198.51.100.1.
    expect([...b.subarray(r + LAYOUT.ctOrigSrc, r + LAYOUT.ctOrigSrc + 4)]).toEqual([192, 0, 2, 5]);
    expect([...b.subarray(r + LAYOUT.ctOrigDst, r + LAYOUT.ctOrigDst + 4)]).toEqual([198, 51, 100, 8]);
    expect([...b.subarray(r + LAYOUT.ctReplyDst, r + LAYOUT.ctReplyDst + 4)]).toEqual([198, 51, 100, 1]);
    // addrWord reads the same addresses as numbers, in CtAddr order from ctOrigSrc.
    const v = new CtBatchView().reset(b, 1).seek(0);
    expect([CtAddr.OrigSrc, CtAddr.OrigDst, CtAddr.ReplyDst].map((a) => v.addrWord(a, 0))).toEqual([0xc0000205, 0xc6336408, 0xc6336401]);
    expect(v.addrWord(CtAddr.ReplySrc, 0)).toBe(0xc6336408);
    expect(b.readUInt16LE(r + LAYOUT.ctOrigDport)).toBe(80);
    expect(b.readUInt16LE(r + LAYOUT.ctReplySport)).toBe(80);
    // The CTA_ID in the captured message (big-endian on the wire) lands host-order in the record.
    const idAttr = f.bytes.indexOf(Buffer.from([0x08, 0x00, 0x0c, 0x00]));
    expect(b.readUInt32LE(r + LAYOUT.ctId)).toBe(f.bytes.readUInt32BE(idAttr + 4));
  });

  it('an NFLOG batch puts the prefix and sequence where the codec reads them', () => {
    const f = readFixture('nflog-ipv4-batch3');
    const b = addon.decodeForTest('nflog', f.bytes);
    const h = readHeader(b);
    expect(h.recordSize).toBe(LAYOUT.nlRecordSize);
    const r = LAYOUT.headerSize;
    expect(b.subarray(r + LAYOUT.nlPrefix, r + LAYOUT.nlPrefix + b[r + LAYOUT.nlPrefixLen]!).toString()).toBe('blocked-9999 ');
    expect(b.readUInt16LE(r + LAYOUT.nlGroup)).toBe(5);
    expect(b.readUInt16LE(r + LAYOUT.nlDport)).toBe(9999);
  });
});
