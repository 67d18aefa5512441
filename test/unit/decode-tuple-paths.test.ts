// The conntrack decoder reads the kernel's usual IPv4 tuple by its fixed layout and walks any
// other. These tests edit a kernel-captured NEW event so that one path or the other runs and
// check that both give the same record, and that neither takes a malformed tuple.
import { describe, expect, it } from 'vitest';
import { LAYOUT, readHeader } from '../../src/source/codec.js';
import { loadNative } from '../../src/source/native.js';
import { readFixture } from '../fixtures/fixtures.js';

const addon = loadNative();
const NEW = readFixture('ct-new-tcp-snat').bytes;
// Offsets in that datagram (see its .hex): CTA_TUPLE_ORIG's nest at 0x14, its CTA_TUPLE_IP at
// 0x18 with V4_SRC at 0x1c and V4_DST at 0x24, its CTA_TUPLE_PROTO at 0x2c with PROTO_NUM at 0x30.
const ORIG = 0x14;
const ORIG_IP = 0x18;
const V4_SRC = 0x1c;
const V4_DST = 0x24;
const PROTO_NUM = 0x30;

function decode(bytes: Buffer): { records: Buffer[]; errors: number } {
  const batch = addon.decodeForTest('conntrack', bytes, 0);
  const h = readHeader(batch);
  const at = (i: number) => LAYOUT.headerSize + i * h.recordSize;
  const records = Array.from({ length: h.count }, (_, i) => Buffer.from(batch.subarray(at(i), at(i + 1))));
  return { records, errors: h.decodeErrors };
}

const edited = (edit: (b: Buffer) => void) => {
  const b = Buffer.from(NEW);
  edit(b);
  return b;
};

describe('conntrack tuple: fixed layout and attribute walk agree', () => {
  const base = decode(NEW);

  it('the captured event decodes to one record', () => {
    expect(base.errors).toBe(0);
    expect(base.records).toHaveLength(1);
    const rec = base.records[0]!;
    expect([...rec.subarray(LAYOUT.ctOrigSrc, LAYOUT.ctOrigSrc + 4)]).toEqual([192, 0, 2, 5]);
    expect(rec[LAYOUT.ctProto]).toBe(6);
    expect(rec.readUInt16LE(LAYOUT.ctOrigDport)).toBe(80);
  });

  it('the same tuple in another attribute order (walked) gives the same record', () => {
    // V4_DST before V4_SRC: not the fixed layout, so the walk decodes it.
    const b = edited((x) => {
      const src = Buffer.from(x.subarray(V4_SRC, V4_SRC + 8));
      x.copy(x, V4_SRC, V4_DST, V4_DST + 8);
      src.copy(x, V4_DST);
    });
    expect(b.equals(NEW)).toBe(false);
    const r = decode(b);
    expect(r.errors).toBe(0);
    expect(r.records).toEqual(base.records);
  });

  it('nests without NLA_F_NESTED (kernels before 5.2) keep the fixed layout', () => {
    const b = edited((x) => {
      x.writeUInt16LE(x.readUInt16LE(ORIG + 2) & 0x7fff, ORIG + 2);
      x.writeUInt16LE(x.readUInt16LE(ORIG_IP + 2) & 0x7fff, ORIG_IP + 2);
    });
    const r = decode(b);
    expect(r.errors).toBe(0);
    expect(r.records).toEqual(base.records);
  });

  it('a wrong attribute length inside the tuple is malformed on either path', () => {
    // PROTO_NUM claims 6 bytes (a u8 is 5 with its header): neither path may read it as a protocol.
    const r = decode(edited((x) => x.writeUInt16LE(6, PROTO_NUM)));
    expect(r.records).toHaveLength(0);
    expect(r.errors).toBe(1);
    // The same with the walk forced (attributes reordered first).
    const w = decode(edited((x) => {
      const src = Buffer.from(x.subarray(V4_SRC, V4_SRC + 8));
      x.copy(x, V4_SRC, V4_DST, V4_DST + 8);
      src.copy(x, V4_DST);
      x.writeUInt16LE(6, PROTO_NUM);
    }));
    expect(w.records).toHaveLength(0);
    expect(w.errors).toBe(1);
  });
});
