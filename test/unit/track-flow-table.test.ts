import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FlowTable, F_LIVE } from '../../src/track/flow-table.js';
import { PortSet } from '../../src/track/port-set.js';

describe('FlowTable', () => {
  // farAway 1: every entry off its home slot has its distance recomputed from the hash, as one
  // 65,535 slots or more from home would.
  it.each([0xffff, 1])('matches a Map under random insert/remove with growth and backward-shift deletion (farAway %i)', (farAway) => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 300 }), fc.integer({ min: 0, max: 3 })), { maxLength: 2000 }),
        (ops) => {
          const t = new FlowTable(16, farAway);
          const ref = new Map<string, number>();
          for (const [add, id, zone] of ops) {
            const k = `${id}/${zone}`;
            const s = t.find(id, zone);
            expect(s >= 0).toBe(ref.has(k));
            if (add && s < 0) {
              t.insert(id, zone, F_LIVE, id * 10 + zone, id & 0xffff, 0);
              ref.set(k, id * 10 + zone);
            } else if (!add && s >= 0) {
              t.remove(s);
              ref.delete(k);
            }
          }
          expect(t.size).toBe(ref.size);
          for (const [k, v] of ref) {
            const [id, zone] = k.split('/').map(Number) as [number, number];
            const s = t.find(id, zone);
            expect(s).toBeGreaterThanOrEqual(0);
            expect(t.keyAt(s)).toBe(v);
          }
        },
      ),
      { numRuns: 100 },
    );
  });

  it('inserts at the vacant slot lookup() reported, also when that insert grows the table', () => {
    const t = new FlowTable(16);
    const ids: number[] = [];
    for (let n = 1; n <= 3000; n++) {
      const id = Math.imul(n, 0x9e3779b1) >>> 0; // all 32 bits used
      const zone = n % 3;
      const at = t.lookup(id, zone);
      expect(at).toBeLessThan(0);
      const s = t.insert(id, zone, F_LIVE, n, n & 0xffff, n & 0xff, ~at);
      expect([t.keyAt(s), t.portAt(s), t.genAt(s)]).toEqual([n, n & 0xffff, n & 0xff]);
      ids.push(id);
      // Every other one goes again, so later inserts land in holes left by backward shifts.
      if (n % 2 === 0) {
        t.remove(t.find(ids[n - 2]!, (n - 1) % 3));
        ids[n - 2] = -1;
      }
    }
    expect(t.slots).toBe(2048); // grown 7 times from 16, each time on a vacant-slot insert
    expect(t.size).toBe(1500);
    ids.forEach((id, i) => {
      if (id === -1) return;
      const s = t.lookup(id, (i + 1) % 3);
      expect(s).toBeGreaterThanOrEqual(0);
      expect(t.keyAt(s)).toBe(i + 1);
    });
  });

  it('sweep removes exactly the selected slots', () => {
    const t = new FlowTable(16);
    for (let id = 1; id <= 500; id++) t.insert(id, 0, F_LIVE, id, 0, id % 2);
    expect(t.sweep((s) => t.genAt(s) === 1)).toBe(250);
    expect(t.size).toBe(250);
    for (let id = 1; id <= 500; id++) expect(t.find(id, 0) >= 0).toBe(id % 2 === 0);
  });

  it('keeps ids unsigned (conntrack ids use all 32 bits)', () => {
    const t = new FlowTable();
    t.insert(0xfffffff0, 7, F_LIVE, 1, 2, 0);
    expect(t.find(0xfffffff0, 7)).toBeGreaterThanOrEqual(0);
    expect(t.find(0xfffffff0, 6)).toBe(-1);
  });
});

describe('PortSet', () => {
  // denseAt 2: key 3 is dense from its second port on, so the counts overflow a dense array's.
  it.each([0, 2])('counts a pair held by more than 65,535 flows exactly (the in-slot count overflows; denseAt %i)', (denseAt) => {
    const p = new PortSet(16, denseAt);
    const N = 70_000;
    for (let i = 0; i < N; i++) p.add(3, 443);
    p.add(3, 444);
    p.add(4, 443);
    expect([p.size, p.distinct[3], p.distinct[4]]).toEqual([3, 2, 1]);
    for (let i = 0; i < N - 1; i++) p.delete(3, 443);
    expect(p.has(3, 443)).toBe(true);
    p.delete(3, 443);
    expect(p.has(3, 443)).toBe(false);
    expect([p.size, p.distinct[3], p.has(3, 444), p.has(4, 443)]).toEqual([2, 1, true, true]);
    // Counts above 32,767 in the slot word (its sign bit) read back right too.
    for (let i = 0; i < 40_000; i++) p.add(5, 1);
    for (let i = 0; i < 39_999; i++) p.delete(5, 1);
    expect(p.has(5, 1)).toBe(true);
    p.delete(5, 1);
    expect(p.has(5, 1)).toBe(false);
    expect(p.size).toBe(2);
  });

  it('moves a busy key to a dense array and back, at most denseMax of them', () => {
    const p = new PortSet(16, 100, 2);
    for (let port = 1000; port < 1099; port++) for (const key of [1, 2, 3]) p.add(key, port);
    expect(p.denseKeys).toBe(0);
    for (const key of [1, 2, 3]) p.add(key, 1099);
    expect(p.denseKeys).toBe(2); // key 3 found both taken
    p.add(3, 1099);
    expect([p.size, p.distinct[1], p.distinct[3]]).toEqual([300, 100, 100]);
    // Back below a quarter of the mark: key 1 returns to the table, and key 3 takes its place.
    for (let port = 1000; port < 1076; port++) p.delete(1, port);
    expect(p.denseKeys).toBe(1);
    p.add(3, 1100);
    expect(p.denseKeys).toBe(2);
    for (let port = 1076; port < 1100; port++) expect(p.has(1, port)).toBe(true);
    expect([p.has(1, 1075), p.has(3, 1099), p.has(3, 1100), p.has(3, 1101)]).toEqual([false, true, true, false]);
    p.delete(3, 1099);
    expect([p.has(3, 1099), p.size, p.distinct[3]]).toEqual([true, 225, 101]); // held twice
  });

  // denseAt 8, denseMax 3: keys move to dense arrays and back all through a run, and compete.
  it.each([[0, 0], [8, 3]])('refcounts pairs and counts distinct ports per key like a reference model (denseAt %i, denseMax %i)', (denseAt, denseMax) => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 40 })), { maxLength: 1500 }),
        (ops) => {
          const p = new PortSet(16, denseAt, denseMax);
          const ref = new Map<string, number>();
          for (const [add, key, port] of ops) {
            const k = `${key}/${port}`;
            if (add) {
              p.add(key, port);
              ref.set(k, (ref.get(k) ?? 0) + 1);
            } else if (ref.has(k)) {
              p.delete(key, port);
              const n = ref.get(k)! - 1;
              if (n === 0) ref.delete(k);
              else ref.set(k, n);
            }
          }
          expect(p.size).toBe(ref.size);
          for (let key = 0; key <= 5; key++) {
            const distinct = [...ref.keys()].filter((k) => k.startsWith(`${key}/`)).length;
            expect(p.distinct[key] ?? 0).toBe(distinct);
          }
          for (const k of ref.keys()) {
            const [key, port] = k.split('/').map(Number) as [number, number];
            expect(p.has(key, port)).toBe(true);
          }
        },
      ),
      { numRuns: 100 },
    );
  });
});
