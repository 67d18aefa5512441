// Hash flooding: the tracker's tables keyed by what a host behind the NAT chooses are hashed
// with per-process random tables (src/track/seeded-hash.ts). Each test builds 65,536 keys that
// collide under the fixed hash the table used before (its constants, copied here as the
// "unseeded hash" an attacker can compute offline), feeds them, and compares the table's mean
// probe count (a deterministic measure of the work per lookup, unlike a timing on a loaded
// machine) with the same number of random keys.
import { describe, expect, it } from 'vitest';
import { FlowTable } from '../../src/track/flow-table.js';
import { Occupancy } from '../../src/track/occupancy.js';
import { PortSet } from '../../src/track/port-set.js';

const N = 65_536;
const MAX_RATIO = 3;

/** Inverse of an odd 32-bit multiplier (Newton's iteration mod 2^32). */
function inverse(c: number): number {
  let x = c;
  for (let i = 0; i < 5; i++) x = Math.imul(x, 2 - Math.imul(c, x));
  return x;
}

// The unseeded hashes the tables used before, as an attacker would compute them.
function oldHomeV4Pre(meta: number, nat: number, dst: number): number {
  return (Math.imul(meta, 0x9e3779b1) ^ Math.imul(nat, 0x85ebca77) ^ Math.imul(dst ^ (dst >>> 16), 0xc2b2ae35)) >>> 0;
}
function oldPortSetHome(key: number, port: number): number {
  let h = Math.imul(key, 0x9e3779b1) ^ Math.imul(port + 1, 0x85ebca77);
  h ^= h >>> 16;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 13;
  return h >>> 0;
}
function oldFlowPre(id: number, zone: number): number {
  return Math.imul(id ^ (zone << 20) ^ (zone >>> 12), 0x9e3779b1) >>> 0;
}

let rand = 0x6e77;
/** Deterministic random words (xorshift32): the same "random keys" every run. */
function random32(): number {
  rand ^= rand << 13;
  rand ^= rand >>> 17;
  rand ^= rand << 5;
  return rand >>> 0;
}

const NAT = 0xc6336401; // 198.51.100.1
const ip4 = (n: number) => `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;

function occupancyProbes(keys: Array<[number, number]>): number {
  const occ = new Occupancy();
  for (const [port, dst] of keys) {
    const meta = Occupancy.metaV4(6, port, false);
    if (occ.findV4(meta, NAT, dst) < 0) occ.internV4(meta, NAT, dst, Occupancy.keyString(6, ip4(NAT), ip4(dst), port, false));
  }
  expect(occ.count).toBe(keys.length);
  return occ.v4ProbeMean();
}

describe('hash flooding: crafted colliding keys cost no more than random ones', () => {
  it('occupancy IPv4 index: 65,536 (dstIp, dstPort) with one unseeded hash value', () => {
    // Every port gets the destination address that makes the old pre-mix value equal to one
    // target: the same home slot at every table size (the old finalizer is a bijection).
    const target = 0x12345678;
    const inv = inverse(0xc2b2ae35);
    const crafted: Array<[number, number]> = [];
    for (let port = 0; port < N; port++) {
      const meta = Occupancy.metaV4(6, port, false);
      const y = Math.imul(target ^ Math.imul(meta, 0x9e3779b1) ^ Math.imul(NAT, 0x85ebca77), inv) >>> 0;
      crafted.push([port, (y ^ (y >>> 16)) >>> 0]);
    }
    expect(new Set(crafted.map(([p, d]) => oldHomeV4Pre(Occupancy.metaV4(6, p, false), NAT | 0, d | 0))).size).toBe(1);
    const random = Array.from({ length: N }, (_, i): [number, number] => [i, random32()]);
    const c = occupancyProbes(crafted);
    const r = occupancyProbes(random);
    expect(r).toBeLessThan(3); // load ≤ 0.5: ≈ 1.5 probes
    expect(c / r).toBeLessThanOrEqual(MAX_RATIO);
  });

  it('port set: 65,536 (key, source port) pairs in 1/128 of the unseeded hash range', () => {
    // 128 destinations (key ids 0..127, handed out in order) × the ports whose old home falls in
    // the low 1/128 of a 2^17-slot table (where 65,536 pairs end up): ~32 per slot.
    const crafted: Array<[number, number]> = [];
    for (let key = 0; crafted.length < N; key++) {
      for (let port = 0; port < 65_536 && crafted.length < N; port++) {
        if ((oldPortSetHome(key, port) & 0x1ffff) < 1024) crafted.push([key, port]);
      }
    }
    const probes = (pairs: Array<[number, number]>) => {
      const s = new PortSet();
      for (const [k, p] of pairs) s.add(k, p);
      expect(s.size).toBe(pairs.length);
      return s.probeMean();
    };
    const seen = new Set<number>();
    const random: Array<[number, number]> = [];
    while (random.length < N) {
      const k = random32() % 1024;
      const p = random32() & 0xffff;
      if (seen.has(k * 65_536 + p)) continue;
      seen.add(k * 65_536 + p);
      random.push([k, p]);
    }
    const c = probes(crafted);
    const r = probes(random);
    expect(r).toBeLessThan(4); // load ≤ 0.7: ≈ 2.2 probes
    expect(c / r).toBeLessThanOrEqual(MAX_RATIO);
  });

  it('flow table: 65,536 (id, zone) with one unseeded hash value', () => {
    const probes = (flows: Array<[number, number]>) => {
      const t = new FlowTable(16);
      for (const [id, zone] of flows) t.insert(id, zone, 1, 0, 0, 0);
      return t.probeMean();
    };
    // id ^ (zone << 20) ^ (zone >>> 12) constant: every zone with its own id.
    const crafted = Array.from({ length: N }, (_, zone): [number, number] => [(0x1234567 ^ (zone << 20) ^ (zone >>> 12)) >>> 0, zone]);
    expect(new Set(crafted.map(([id, z]) => oldFlowPre(id, z))).size).toBe(1);
    const random = Array.from({ length: N }, (_, i): [number, number] => [random32(), i]);
    const c = probes(crafted);
    const r = probes(random);
    expect(r).toBeLessThan(4);
    expect(c / r).toBeLessThanOrEqual(MAX_RATIO);
  });
});
