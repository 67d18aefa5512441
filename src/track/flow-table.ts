// Live flows keyed by (conntrack id, zone): an open-addressing hash (linear probing,
// backward-shift deletion, so no deleted markers pile up) over parallel typed arrays. One flow
// costs 14 bytes per slot at a load factor of at most 0.75, instead of a JS object per flow.
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
  private zones!: Uint16Array;
  private flags!: Uint8Array;
  /** Dump generation stamp (see Tracker): a flow stamped with the current one is known fresh. */
  private gens!: Uint8Array;
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
    this.zones = new Uint16Array(n);
    this.flags = new Uint8Array(n);
    this.gens = new Uint8Array(n);
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
      if (this.flags[i] !== 0) sum += ((i - this.home(this.ids[i]!, this.zones[i]!)) & this.mask) + 1;
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
    const { ids, zones, flags, mask } = this;
    let i = this.home(id, zone);
    while (flags[i] !== 0) {
      if (ids[i] === id && zones[i] === zone) return i;
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
      this.zones[i] = zone;
    } else {
      i = this.place(id, zone);
    }
    this.flags[i] = flags;
    this.keys[i] = key;
    this.ports[i] = port;
    this.gens[i] = gen;
    this.filled++;
    if (flags & F_LIVE) this.size++;
    return i;
  }

  private place(id: number, zone: number): number {
    const { flags, mask } = this;
    let i = this.home(id, zone);
    while (flags[i] !== 0) i = (i + 1) & mask;
    this.ids[i] = id >>> 0;
    this.zones[i] = zone;
    return i;
  }

  /** Empties slot i, shifting later members of its probe run back so lookups stay correct. */
  remove(i: number): void {
    const { ids, zones, flags, gens, keys, ports, mask } = this;
    if (flags[i]! & F_LIVE) this.size--;
    this.filled--;
    let hole = i;
    let j = (i + 1) & mask;
    while (flags[j] !== 0) {
      const k = this.home(ids[j]!, zones[j]!);
      // j may move into the hole only if its home is not cyclically within (hole, j].
      const between = hole <= j ? k > hole && k <= j : k > hole || k <= j;
      if (!between) {
        ids[hole] = ids[j]!;
        zones[hole] = zones[j]!;
        flags[hole] = flags[j]!;
        gens[hole] = gens[j]!;
        keys[hole] = keys[j]!;
        ports[hole] = ports[j]!;
        hole = j;
      }
      j = (j + 1) & mask;
    }
    flags[hole] = 0;
  }

  flagsAt(i: number): number { return this.flags[i]!; }
  setFlags(i: number, f: number): void {
    const was = this.flags[i]! & F_LIVE;
    this.flags[i] = f;
    this.size += (f & F_LIVE) - was;
  }
  keyAt(i: number): number { return this.keys[i]!; }
  portAt(i: number): number { return this.ports[i]!; }
  genAt(i: number): number { return this.gens[i]!; }
  setGen(i: number, g: number): void { this.gens[i] = g; }

  /**
   * Removes every slot for which drop(slot) is true; drop() may read the slot. Collected first
   * and removed after, because backward shifts would move unvisited slots behind the cursor.
   */
  sweep(drop: (slot: number) => boolean): number {
    const doomed: number[] = [];
    const n = this.slots;
    for (let i = 0; i < n; i++) {
      if (this.flags[i] !== 0 && drop(i)) doomed.push(this.ids[i]!, this.zones[i]!);
    }
    for (let d = 0; d < doomed.length; d += 2) {
      const s = this.find(doomed[d]!, doomed[d + 1]!);
      if (s >= 0) this.remove(s);
    }
    return doomed.length / 2;
  }

  private grow(): void {
    const { ids, zones, flags, gens, keys, ports } = this;
    this.alloc((this.mask + 1) * 2);
    for (let i = 0; i < flags.length; i++) {
      if (flags[i] === 0) continue;
      const j = this.place(ids[i]!, zones[i]!);
      this.flags[j] = flags[i]!;
      this.gens[j] = gens[i]!;
      this.keys[j] = keys[i]!;
      this.ports[j] = ports[i]!;
    }
  }
}
