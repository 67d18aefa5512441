// The set of (key id, source port) pairs in use, with a reference count per pair, in one
// open-addressing table shared by all keys: memory follows live flows, not keys × 65536 bits,
// so a scan across a million destinations costs what its flows cost.
//
// A slot is two words side by side, [key id, port | refs << 16], so a lookup reads one cache
// line, not one per field (the table outgrows the CPU caches at tens of thousands of flows, and
// three parallel arrays were three misses per operation). A pair held by more than 65,535 flows
// (many zones, or DNAT backends behind one address) keeps the excess in `overflow`.
import { hash2 } from './seeded-hash.js';

const MAX_LOAD = 0.7;
const REF = 0x10000;
const REFS_MAX = 0xffff;

export class PortSet {
  private mask: number;
  /** Slot i: [2i] key id (-1 empty), [2i + 1] port | refs << 16 (refs 1..REFS_MAX). */
  private slots: Int32Array;
  /** References beyond REFS_MAX, by key * 65536 + port. */
  private readonly overflow = new Map<number, number>();
  private filled = 0;
  /** Distinct ports in use per key id (grown on demand). */
  distinct: Int32Array = new Int32Array(64);

  constructor(initialSlots = 1024) {
    let n = 16;
    while (n < initialSlots) n <<= 1;
    this.mask = n - 1;
    this.slots = new Int32Array(2 * n).fill(-1);
  }

  get size(): number {
    return this.filled;
  }

  // Seeded per process: NAT keeps a client's source port when it is free, so clients choose ports.
  private home(key: number, port: number): number {
    return hash2(key, port) & this.mask;
  }

  /** Mean probes a lookup takes (1 = none collided): the hash's quality, for tests. */
  probeMean(): number {
    const s = this.slots;
    let sum = 0;
    for (let i = 0; i <= this.mask; i++) {
      if (s[2 * i] !== -1) sum += ((i - this.home(s[2 * i]!, s[2 * i + 1]! & 0xffff)) & this.mask) + 1;
    }
    return this.filled ? sum / this.filled : 0;
  }

  /** Slot of the pair, or ~v where v is the empty slot that ended the probe (where it would go). */
  private probe(key: number, port: number): number {
    const { slots, mask } = this;
    let i = this.home(key, port);
    for (let k = slots[2 * i]!; k !== -1; k = slots[2 * i]!) {
      if (k === key && (slots[2 * i + 1]! & 0xffff) === port) return i;
      i = (i + 1) & mask;
    }
    return ~i;
  }

  has(key: number, port: number): boolean {
    return this.probe(key, port) >= 0;
  }

  add(key: number, port: number): void {
    let i = this.probe(key, port);
    if (i >= 0) {
      const w = this.slots[2 * i + 1]!;
      if (w >>> 16 < REFS_MAX) this.slots[2 * i + 1] = w + REF;
      else this.overflow.set(key * 65536 + port, (this.overflow.get(key * 65536 + port) ?? 0) + 1);
      return;
    }
    if (this.filled + 1 > (this.mask + 1) * MAX_LOAD) {
      this.grow();
      i = this.probe(key, port);
    }
    i = ~i;
    this.slots[2 * i] = key;
    this.slots[2 * i + 1] = port | REF;
    this.filled++;
    if (key >= this.distinct.length) {
      const d = new Int32Array(Math.max(key + 1, this.distinct.length * 2));
      d.set(this.distinct);
      this.distinct = d;
    }
    this.distinct[key]!++;
  }

  delete(key: number, port: number): void {
    const i = this.probe(key, port);
    if (i < 0) return;
    const { slots, mask } = this;
    const w = slots[2 * i + 1]!;
    const refs = w >>> 16;
    if (refs === REFS_MAX && this.overflow.size > 0) {
      const extra = this.overflow.get(key * 65536 + port) ?? 0;
      if (extra > 0) {
        if (extra === 1) this.overflow.delete(key * 65536 + port);
        else this.overflow.set(key * 65536 + port, extra - 1);
        return;
      }
    }
    if (refs > 1) {
      slots[2 * i + 1] = w - REF;
      return;
    }
    this.distinct[key]!--;
    this.filled--;
    // Backward-shift deletion (as in FlowTable.remove): no deleted markers.
    let hole = i;
    let j = (i + 1) & mask;
    for (let k = slots[2 * j]!; k !== -1; k = slots[2 * j]!) {
      const wj = slots[2 * j + 1]!;
      const h = this.home(k, wj & 0xffff);
      const between = hole <= j ? h > hole && h <= j : h > hole || h <= j;
      if (!between) {
        slots[2 * hole] = k;
        slots[2 * hole + 1] = wj;
        hole = j;
      }
      j = (j + 1) & mask;
    }
    slots[2 * hole] = -1;
  }

  private grow(): void {
    const old = this.slots;
    const n = (this.mask + 1) * 2;
    this.mask = n - 1;
    this.slots = new Int32Array(2 * n).fill(-1);
    for (let i = 0; i < old.length; i += 2) {
      if (old[i] === -1) continue;
      const j = ~this.probe(old[i]!, old[i + 1]! & 0xffff);
      this.slots[2 * j] = old[i]!;
      this.slots[2 * j + 1] = old[i + 1]!;
    }
  }
}
