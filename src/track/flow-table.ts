// Live flows keyed by (conntrack id, zone): an open-addressing hash (linear probing,
// backward-shift deletion, so no deleted markers pile up) over parallel typed arrays. One flow
// costs 14 bytes per slot at a load factor of at most 0.75, instead of a JS object per flow.
// Flags, generation and zone share one 32-bit word per slot, so a probe reads two arrays (ids,
// meta) and a flow four in all: each array is a cache miss of its own on a table this size.
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

export class FlowTable {
  private mask = 0;
  private ids!: Uint32Array;
  /**
   * flags | gen << 8 | zone << 16; 0 = empty (an entry's flags are never 0). gen: the dump
   * generation stamp (see Tracker): a flow stamped with the current one is known fresh.
   */
  private meta!: Uint32Array;
  private keys!: Int32Array;
  private ports!: Uint16Array;
  private filled = 0;
  /** Live flows (tombstones excluded). */
  size = 0;

  constructor(initialSlots = 1024) {
    let n = 16;
    while (n < initialSlots) n <<= 1;
    this.alloc(n);
  }

  private alloc(n: number): void {
    this.mask = n - 1;
    this.ids = new Uint32Array(n);
    this.meta = new Uint32Array(n);
    this.keys = new Int32Array(n);
    this.ports = new Uint16Array(n);
  }

  get slots(): number {
    return this.mask + 1;
  }

  /** Entries in use, tombstones included. */
  get occupied(): number {
    return this.filled;
  }

  // Seeded per process like the other tables: conntrack ids are the kernel's (keyed siphash on
  // current kernels), but nothing here should depend on that.
  private home(id: number, zone: number): number {
    return hash2(id, zone) & this.mask;
  }

  /** Mean probes a lookup takes (1 = none collided): the hash's quality, for tests. */
  probeMean(): number {
    let sum = 0;
    for (let i = 0; i <= this.mask; i++) {
      if (this.meta[i] !== 0) sum += ((i - this.home(this.ids[i]!, this.meta[i]! >>> 16)) & this.mask) + 1;
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
    const { ids, meta, mask } = this;
    let i = this.home(id, zone);
    for (let m = meta[i]!; m !== 0; m = meta[i]!) {
      if (ids[i] === id && m >>> 16 === zone) return i;
      i = (i + 1) & mask;
    }
    return ~i;
  }

  /**
   * Adds (id, zone), which must not be present. Returns the slot. `vacant`: lookup()'s ~result
   * for this (id, zone) with no insert or remove since, or -1 to probe here.
   */
  insert(id: number, zone: number, flags: number, key: number, port: number, gen: number, vacant = -1): number {
    let i: number;
    if ((this.filled + 1) > this.slots * MAX_LOAD) {
      this.grow();
      i = this.place(id, zone);
    } else if (vacant >= 0) {
      i = vacant;
      this.ids[i] = id >>> 0;
    } else {
      i = this.place(id, zone);
    }
    this.meta[i] = (flags & 0xff) | ((gen & 0xff) << 8) | ((zone & 0xffff) << 16);
    this.keys[i] = key;
    this.ports[i] = port;
    this.filled++;
    if (flags & F_LIVE) this.size++;
    return i;
  }

  /** Finds (id, zone) an empty slot and writes its id there; the caller writes the rest. */
  private place(id: number, zone: number): number {
    const { meta, mask } = this;
    let i = this.home(id, zone);
    while (meta[i] !== 0) i = (i + 1) & mask;
    this.ids[i] = id >>> 0;
    return i;
  }

  /** Empties slot i, shifting later members of its probe run back so lookups stay correct. */
  remove(i: number): void {
    const { ids, meta, keys, ports, mask } = this;
    if (meta[i]! & F_LIVE) this.size--;
    this.filled--;
    let hole = i;
    let j = (i + 1) & mask;
    for (let m = meta[j]!; m !== 0; m = meta[j]!) {
      const k = this.home(ids[j]!, m >>> 16);
      // j may move into the hole only if its home is not cyclically within (hole, j].
      const between = hole <= j ? k > hole && k <= j : k > hole || k <= j;
      if (!between) {
        ids[hole] = ids[j]!;
        meta[hole] = m;
        keys[hole] = keys[j]!;
        ports[hole] = ports[j]!;
        hole = j;
      }
      j = (j + 1) & mask;
    }
    meta[hole] = 0;
  }

  flagsAt(i: number): number { return this.meta[i]! & 0xff; }
  setFlags(i: number, f: number): void {
    const m = this.meta[i]!;
    this.meta[i] = (m & ~0xff) | (f & 0xff);
    this.size += (f & F_LIVE) - (m & F_LIVE);
  }
  keyAt(i: number): number { return this.keys[i]!; }
  portAt(i: number): number { return this.ports[i]!; }
  genAt(i: number): number { return (this.meta[i]! >>> 8) & 0xff; }
  setGen(i: number, g: number): void { this.meta[i] = (this.meta[i]! & ~0xff00) | ((g & 0xff) << 8); }

  /**
   * Removes every slot for which drop(slot) is true; drop() may read the slot. Collected first
   * and removed after, because backward shifts would move unvisited slots behind the cursor.
   */
  sweep(drop: (slot: number) => boolean): number {
    const doomed: number[] = [];
    const n = this.slots;
    for (let i = 0; i < n; i++) {
      if (this.meta[i] !== 0 && drop(i)) doomed.push(this.ids[i]!, this.meta[i]! >>> 16);
    }
    for (let d = 0; d < doomed.length; d += 2) {
      const s = this.find(doomed[d]!, doomed[d + 1]!);
      if (s >= 0) this.remove(s);
    }
    return doomed.length / 2;
  }

  private grow(): void {
    const { ids, meta, keys, ports } = this;
    this.alloc((this.mask + 1) * 2);
    for (let i = 0; i < meta.length; i++) {
      if (meta[i] === 0) continue;
      const j = this.place(ids[i]!, meta[i]! >>> 16);
      this.meta[j] = meta[i]!;
      this.keys[j] = keys[i]!;
      this.ports[j] = ports[i]!;
    }
  }
}
