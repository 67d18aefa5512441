// Property tests: random, truncated, oversized and mutated datagrams through the C++ decoders
// never crash or hang, always give a well-formed batch, and only bump the error counters.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { readHeader, LAYOUT } from '../../src/source/codec.js';
import { loadNative, type DecodeKind } from '../../src/source/native.js';
import { FIXTURES, readFixture } from '../fixtures/fixtures.js';

const addon = loadNative();
const KINDS: DecodeKind[] = ['conntrack', 'dump', 'nflog', 'stats'];
const kindOf = (name: string): DecodeKind => (name === 'ct-dump' ? 'dump' : name.startsWith('nflog') ? 'nflog' : name.startsWith('stats') ? 'stats' : 'conntrack');
const fixtures = FIXTURES.map((n) => ({ name: n, kind: kindOf(n), bytes: readFixture(n).bytes }));

function decode(kind: DecodeKind, bytes: Uint8Array) {
  const batch = addon.decodeForTest(kind, bytes);
  const h = readHeader(batch); // throws on anything malformed
  // Never more records than messages could fit in the input.
  expect(h.count).toBeLessThanOrEqual(Math.floor(bytes.length / 16) + 1);
  return h;
}

/** A netlink message with arbitrary (possibly nested, possibly lying) attributes. */
const attrTree: fc.Arbitrary<Buffer> = fc.letrec<{ attr: Buffer }>((tie) => ({
  attr: fc.oneof(
    { depthSize: 'small' },
    fc.record({ type: fc.integer({ min: 0, max: 0xffff }), data: fc.uint8Array({ maxLength: 24 }), lie: fc.integer({ min: -8, max: 8 }) }).map(({ type, data, lie }) => {
      const b = Buffer.alloc(4 + ((data.length + 3) & ~3));
      b.writeUInt16LE(Math.max(0, Math.min(0xffff, 4 + data.length + (lie % 3 === 0 ? lie : 0))), 0);
      b.writeUInt16LE(type, 2);
      Buffer.from(data).copy(b, 4);
      return b;
    }),
    fc.record({ type: fc.integer({ min: 1, max: 20 }), kids: fc.array(tie('attr'), { maxLength: 4 }) }).map(({ type, kids }) => {
      const body = Buffer.concat(kids);
      const b = Buffer.alloc(4);
      b.writeUInt16LE(Math.min(0xffff, 4 + body.length), 0);
      b.writeUInt16LE(type | 0x8000, 2);
      return Buffer.concat([b, body]);
    }),
  ),
})).attr;

function message(type: number, flags: number, family: number, attrs: Buffer[]): Buffer {
  const body = Buffer.concat(attrs);
  const h = Buffer.alloc(20);
  h.writeUInt32LE(20 + body.length, 0);
  h.writeUInt16LE(type, 4);
  h.writeUInt16LE(flags, 6);
  h[16] = family;
  return Buffer.concat([h, body]);
}

describe('native decoders under hostile input', () => {
  it('random bytes: a valid batch every time', () => {
    fc.assert(
      fc.property(fc.constantFrom(...KINDS), fc.uint8Array({ maxLength: 4096 }), (kind, bytes) => {
        decode(kind, bytes);
      }),
      { numRuns: 2000 },
    );
  });

  it('every truncation of every fixture: fewer records or a counted error, never garbage', () => {
    for (const f of fixtures) {
      const full = decode(f.kind, f.bytes);
      expect(full.decodeErrors).toBe(0);
      for (let n = 0; n < f.bytes.length; n++) {
        const h = decode(f.kind, f.bytes.subarray(0, n));
        expect(h.count).toBeLessThanOrEqual(full.count);
        // Cut inside a message: the walk must notice (a cut exactly between messages is clean).
        if (f.kind !== 'stats' && h.count < full.count && n % 4 !== 0) expect(h.decodeErrors).toBeGreaterThan(0);
      }
    }
  });

  it('mutated fixtures (random bytes overwritten): no crash, header intact', () => {
    fc.assert(
      fc.property(fc.constantFrom(...fixtures), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 16 }), (f, edits) => {
        const b = Buffer.from(f.bytes);
        for (const [at, v] of edits) b[at % b.length] = v;
        decode(f.kind, b);
      }),
      { numRuns: 3000 },
    );
  });

  it('oversized lengths are counted as errors and yield nothing', () => {
    for (const f of fixtures.filter((x) => x.kind === 'conntrack')) {
      const b = Buffer.from(f.bytes);
      b.writeUInt32LE(b.length + 64, 0); // nlmsg_len past the datagram
      const h = decode('conntrack', b);
      expect([h.count, h.decodeErrors]).toEqual([0, 1]);
      const a = Buffer.from(f.bytes);
      a.writeUInt16LE(0xfff0, 20); // first attribute claims far more than the message holds
      const ha = decode('conntrack', a);
      expect([ha.count, ha.decodeErrors]).toEqual([0, 1]);
    }
  });

  it('arbitrary attribute trees in a conntrack/NFLOG message: unknowns counted, errors counted, no crash', () => {
    fc.assert(
      fc.property(
        fc.constantFrom({ type: 0x0100, kind: 'conntrack' as const }, { type: 0x0102, kind: 'conntrack' as const }, { type: 0x0400, kind: 'nflog' as const }),
        fc.constantFrom(2, 10, 0, 7),
        fc.array(attrTree, { maxLength: 8 }),
        (m, family, attrs) => {
          const h = decode(m.kind, message(m.type, 0x600, family, attrs));
          expect(h.count).toBeLessThanOrEqual(1);
          // Nothing decoded is never silent: the message was counted as malformed.
          if (h.count === 0) expect(h.decodeErrors).toBeGreaterThan(0);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('unknown top-level attributes (a newer kernel) are skipped and counted, not fatal', () => {
    const f = fixtures.find((x) => x.name === 'ct-new-tcp-snat')!;
    const extra = Buffer.from([8, 0, 0x40, 0, 1, 2, 3, 4]); // type 64: unknown to us
    const b = Buffer.concat([f.bytes, extra]);
    b.writeUInt32LE(b.length, 0);
    const h = decode('conntrack', b);
    expect([h.count, h.unknownAttrs, h.decodeErrors]).toEqual([1, 1, 0]);
    expect(LAYOUT.ctRecordSize).toBe(h.recordSize);
  });

  it('SCTP/DCCP protocol info is known (not counted as unknown); a newer protoinfo is', () => {
    const f = fixtures.find((x) => x.name === 'ct-new-tcp-snat')!;
    const withProtoinfo = (inner: number) => {
      // CTA_PROTOINFO (4, nested) holding one empty nested attribute of type `inner`.
      const extra = Buffer.from([8, 0, 4, 0x80, 4, 0, inner, 0x80]);
      const b = Buffer.concat([f.bytes, extra]);
      b.writeUInt32LE(b.length, 0);
      return decode('conntrack', b);
    };
    for (const inner of [2, 3]) expect([withProtoinfo(inner).count, withProtoinfo(inner).unknownAttrs]).toEqual([1, 0]); // DCCP, SCTP
    expect([withProtoinfo(9).count, withProtoinfo(9).unknownAttrs]).toEqual([1, 1]);
  });
});
