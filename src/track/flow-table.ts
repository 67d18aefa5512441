// Live flows keyed by (conntrack id, zone): an open-addressing hash (linear probing,
// backward-shift deletion, so no deleted markers pile up) over one typed array. One flow costs
// 16 bytes per slot at a load factor of at most 0.75, instead of a JS object per flow.
// A slot's four words lie side by side (id; flags, generation and zone; key; port), so a lookup
// and what the tracker then reads of the flow share one cache line: under load the table is
// cold between batches (serve's kernel work and reader run in between), and parallel arrays
// were a miss per field (bench-track-steady --pollute).
import { hash2 } from './seeded-hash.js';

/** Slot flag bits. 0 means the slot is empty. */
export const F_LIVE = 1;
/** A DESTROY seen during a dump for an id we did not know: a later Dump record is stale. */
export const F_TOMB = 2;
/** Counted in occupancy under a local (non-NAT) key. */
export const F_LOCAL = 4;
/**
 * An event reported this flow during the current dump: it is newer than any dump record of
 * the id still in flight (the dump socket and the event socket are read in no fixed order).
 */
export const F_EVENT = 8;

const MAX_LOAD = 0.75;

/** Words per slot: id, meta, key, port | distance from home << 16. */
const W = 4;
/** A distance from home this far or farther is stored as this and computed from the hash when needed. */
const FAR = 0xffff;

export class FlowTable {
  private mask = 0;
  /**
   * Slot i at 4i: [id (as int32), meta, key, port | distance from home << 16]. The distance
   * spares a backward shift the hash of each entry it passes. meta = flags | gen << 8 | zone << 16;
   * 0 = empty (an entry's flags are never 0). gen: the dump generation stamp (see Tracker): a
   * flow stamped with the current one is known fresh.
   */
  private s!: Int32Array;
  private filled = 0;
  /** Live flows (tombstones excluded). */
  size = 0;

  /** Distances from home at or beyond this are not kept (recomputed from the hash). */
  private readonly farAway: number;

  /** farAway: below 0xffff only for tests, to exercise the recomputing path. */
  constructor(initialSlots = 1024, farAway = FAR) {
    this.farAway = Math.min(farAway, FAR);
    let n = 16;
    while (n < initialSlots) n <<= 1;
    this.alloc(n);
  }

  private alloc(n: number): void {
    this.mask = n - 1;
    this.s = new Int32Array(n * W);
  }

  get slots(): number {
    return this.mask + 1;
  }

  /** Entries in use, tombstones included. */
  get occupied(): number {
    return this.filled;
  }

  // Seeded per process like the other tables: conntrack ids are the kernel's (keyed siphash on
  // current kernels), but nothing here should depend on that. (hash2 reads an int32 id's bits
  // as the uint32's.)
  private home(id: number, zone: number): number {
    return hash2(id, zone) & this.mask;
  }

  /** Mean probes a lookup takes (1 = none collided): the hash's quality, for tests. */
  probeMean(): number {
    const s = this.s;
    let sum = 0;
    for (let i = 0; i <= this.mask; i++) {
      if (s[i * W + 1] !== 0) sum += ((i - this.home(s[i * W]!, s[i * W + 1]! >>> 16)) & this.mask) + 1;
    }
    return this.filled ? sum / this.filled : 0;
  }

  /** Slot of (id, zone), or -1. */
  find(id: number, zone: number): number {
    const i = this.lookup(id, zone);
    return i >= 0 ? i : -1;
  }

  /**
   * Slot of (id, zone), or ~v (negative) where v is the empty slot its probe ended at: where
   * insert() would put it, handed back as insert's `vacant` so a NEW hashes and probes once.
   */
  lookup(id: number, zone: number): number {
    const { s, mask } = this;
    const id32 = id | 0;
    let i = this.home(id32, zone);
    for (let m = s[i * W + 1]!; m !== 0; m = s[i * W + 1]!) {
      if (s[i * W] === id32 && m >>> 16 === zone) return i;
      i = (i + 1) & mask;
    }
    return ~i;
  }

  /**
   * Adds (id, zone), which must not be present. Returns the slot. `vacant`: lookup()'s ~result
   * for this (id, zone) with no insert or remove since, or -1 to probe here.
   */
  insert(id: number, zone: number, flags: number, key: number, port: number, gen: number, vacant = -1): number {
    if ((this.filled + 1) > this.slots * MAX_LOAD) this.grow();
    else if (vacant >= 0) return this.fill(vacant, this.home(id | 0, zone), id, (flags & 0xff) | ((gen & 0xff) << 8) | ((zone & 0xffff) << 16), key, port);
    return this.place(id, (flags & 0xff) | ((gen & 0xff) << 8) | ((zone & 0xffff) << 16), key, port);
  }

  /** Puts an entry known to be absent into the first empty slot of its probe run. */
  private place(id: number, meta: number, key: number, port: number): number {
    const { s, mask } = this;
    const h = this.home(id | 0, meta >>> 16);
    let i = h;
    while (s[i * W + 1] !== 0) i = (i + 1) & mask;
    return this.fill(i, h, id, meta, key, port);
  }

  private fill(i: number, home: number, id: number, meta: number, key: number, port: number): number {
    const s = this.s;
    const at = i * W;
    s[at] = id;
    s[at + 1] = meta;
    s[at + 2] = key;
    s[at + 3] = (port & 0xffff) | (Math.min((i - home) & this.mask, this.farAway) << 16);
    this.filled++;
    if (meta & F_LIVE) this.size++;
    return i;
  }

  /** Empties slot i, shifting later members of its probe run back so lookups stay correct. */
  remove(i: number): void {
    const { s, mask } = this;
    if (s[i * W + 1]! & F_LIVE) this.size--;
    this.filled--;
    let hole = i;
    let j = (i + 1) & mask;
    for (let m = s[j * W + 1]!; m !== 0; m = s[j * W + 1]!) {
      // j may move into the hole only if its home is not cyclically within (hole, j]: if it is
      // at least as far from home as from the hole. The distance is kept in the slot.
      const w = s[j * W + 3]!;
      let d = w >>> 16;
      if (d === this.farAway) d = (j - this.home(s[j * W]!, m >>> 16)) & mask;
      const gap = (j - hole) & mask;
      if (d >= gap) {
        const to = hole * W;
        const from = j * W;
        s[to] = s[from]!;
        s[to + 1] = m;
        s[to + 2] = s[from + 2]!;
        s[to + 3] = (w & 0xffff) | (Math.min(d - gap, this.farAway) << 16);
        hole = j;
      }
      j = (j + 1) & mask;
    }
    s[hole * W + 1] = 0;
  }

  flagsAt(i: number): number { return this.s[i * W + 1]! & 0xff; }
  setFlags(i: number, f: number): void {
    const m = this.s[i * W + 1]!;
    this.s[i * W + 1] = (m & ~0xff) | (f & 0xff);
    this.size += (f & F_LIVE) - (m & F_LIVE);
  }
  keyAt(i: number): number { return this.s[i * W + 2]!; }
  portAt(i: number): number { return this.s[i * W + 3]! & 0xffff; }
  genAt(i: number): number { return (this.s[i * W + 1]! >>> 8) & 0xff; }
  setGen(i: number, g: number): void { this.s[i * W + 1] = (this.s[i * W + 1]! & ~0xff00) | ((g & 0xff) << 8); }

  /**
   * Removes every slot for which drop(slot) is true; drop() may read the slot. Collected first
   * and removed after, because backward shifts would move unvisited slots behind the cursor.
   */
  sweep(drop: (slot: number) => boolean): number {
    const doomed: number[] = [];
    const n = this.slots;
    for (let i = 0; i < n; i++) {
      if (this.s[i * W + 1] !== 0 && drop(i)) doomed.push(this.s[i * W]!, this.s[i * W + 1]! >>> 16);
    }
    for (let d = 0; d < doomed.length; d += 2) {
      const at = this.find(doomed[d]!, doomed[d + 1]!);
      if (at >= 0) this.remove(at);
    }
    return doomed.length / 2;
  }

  private grow(): void {
    const old = this.s;
    this.alloc((this.mask + 1) * 2);
    this.filled = 0;
    this.size = 0;
    for (let at = 0; at < old.length; at += W) {
      if (old[at + 1] !== 0) this.place(old[at]!, old[at + 1]!, old[at + 2]!, old[at + 3]! & 0xffff);
    }
  }
}
