// The set of (key id, source port) pairs in use, with a reference count per pair, in one
// open-addressing table shared by all keys: memory follows live flows, not keys × 65536 bits,
// so a scan across a million destinations costs what its flows cost.
//
// A slot is two words side by side, [key id, port | refs << 16], so a lookup reads one cache
// line, not one per field (the table outgrows the CPU caches at tens of thousands of flows, and
// three parallel arrays were three misses per operation). A pair held by more than 65,535 flows
// (many zones, or DNAT backends behind one address) keeps the excess in `overflow`.
//
// A key holding thousands of ports (the destination a NAT is running out of ports to, the one
// natwatch exists to watch) moves to a dense array of counts, one per port: its flows then cost
// one memory access each instead of a probe, and a delete no backward shift through the long
// runs its ports make in the shared table. At most DENSE_MAX keys (128 KiB each) are dense; a key
// goes back to the table when its ports fall below a quarter of the mark, so a key hovering at
// the mark does not move back and forth.
import { hash2 } from './seeded-hash.js';

const MAX_LOAD = 0.7;
const REF = 0x10000;
const REFS_MAX = 0xffff;
const PORTS = 65536;
/** Distinct ports that make a key dense, by default. */
const DENSE_AT = 2048;
const DENSE_MAX = 16;

export class PortSet {
  private mask: number;
  /** Slot i: [2i] key id (-1 empty), [2i + 1] port | refs << 16 (refs 1..REFS_MAX). */
  private slots: Int32Array;
  /** References beyond REFS_MAX, by key * 65536 + port. */
  private readonly overflow = new Map<number, number>();
  /** Pairs in the shared table. */
  private filled = 0;
  /** Pairs in dense arrays. */
  private denseFilled = 0;
  /** Distinct ports in use per key id (grown on demand). */
  distinct: Int32Array = new Int32Array(64);
  /** Per key id: its dense array's index + 1, 0 while its pairs are in the shared table. */
  private denseOf: Int32Array = new Int32Array(64);
  /** Dense arrays: refs per port (beyond REFS_MAX in `overflow`); null = free. */
  private readonly dense: Array<Uint16Array | null> = [];
  private denseCount = 0;

  /** Distinct ports that make a key dense (0: never); it goes back below a quarter of that. */
  private readonly denseAt: number;
  /** Dense keys at most. */
  private readonly denseMax: number;

  constructor(initialSlots = 1024, denseAt = DENSE_AT, denseMax = DENSE_MAX) {
    this.denseAt = denseAt;
    this.denseMax = denseMax;
    let n = 16;
    while (n < initialSlots) n <<= 1;
    this.mask = n - 1;
    this.slots = new Int32Array(2 * n).fill(-1);
  }

  /** Distinct (key, port) pairs in use. */
  get size(): number {
    return this.filled + this.denseFilled;
  }

  /** Keys whose ports are in a dense array (for tests). */
  get denseKeys(): number {
    return this.denseCount;
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
    const d = key < this.denseOf.length ? this.denseOf[key]! : 0;
    if (d !== 0) return this.dense[d - 1]![port]! > 0;
    return this.probe(key, port) >= 0;
  }

  add(key: number, port: number): void {
    if (key >= this.distinct.length) this.fit(key);
    const d = this.denseOf[key]!;
    if (d !== 0) {
      const counts = this.dense[d - 1]!;
      const r = counts[port]!;
      if (r === REFS_MAX) this.addOverflow(key, port);
      else counts[port] = r + 1;
      if (r === 0) {
        this.denseFilled++;
        this.distinct[key]!++;
      }
      return;
    }
    let i = this.probe(key, port);
    if (i >= 0) {
      const w = this.slots[2 * i + 1]!;
      if (w >>> 16 < REFS_MAX) this.slots[2 * i + 1] = w + REF;
      else this.addOverflow(key, port);
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
    if (++this.distinct[key]! >= this.denseAt && this.denseAt > 0 && this.denseCount < this.denseMax) this.toDense(key);
  }

  delete(key: number, port: number): void {
    const d = key < this.denseOf.length ? this.denseOf[key]! : 0;
    if (d !== 0) {
      const counts = this.dense[d - 1]!;
      const r = counts[port]!;
      if (r === 0 || (r === REFS_MAX && this.takeOverflow(key, port))) return;
      counts[port] = r - 1;
      if (r > 1) return;
      this.denseFilled--;
      if (--this.distinct[key]! < this.denseAt >> 2) this.toSparse(key);
      return;
    }
    const i = this.probe(key, port);
    if (i < 0) return;
    const { slots, mask } = this;
    const w = slots[2 * i + 1]!;
    const refs = w >>> 16;
    if (refs === REFS_MAX && this.takeOverflow(key, port)) return;
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

  private addOverflow(key: number, port: number): void {
    this.overflow.set(key * 65536 + port, (this.overflow.get(key * 65536 + port) ?? 0) + 1);
  }

  /** Takes one reference from the overflow of a pair at REFS_MAX; false when it has none. */
  private takeOverflow(key: number, port: number): boolean {
    if (this.overflow.size === 0) return false;
    const extra = this.overflow.get(key * 65536 + port) ?? 0;
    if (extra === 0) return false;
    if (extra === 1) this.overflow.delete(key * 65536 + port);
    else this.overflow.set(key * 65536 + port, extra - 1);
    return true;
  }

  private fit(key: number): void {
    const n = Math.max(key + 1, this.distinct.length * 2);
    const d = new Int32Array(n);
    d.set(this.distinct);
    this.distinct = d;
    const o = new Int32Array(n);
    o.set(this.denseOf);
    this.denseOf = o;
  }

  /** Moves key's pairs from the shared table into a dense array (the table is rebuilt: O(slots), rare). */
  private toDense(key: number): void {
    const counts = new Uint16Array(PORTS);
    const old = this.slots;
    this.slots = new Int32Array(old.length).fill(-1);
    this.filled = 0;
    for (let i = 0; i < old.length; i += 2) {
      if (old[i] === -1) continue;
      if (old[i] === key) counts[old[i + 1]! & 0xffff] = old[i + 1]! >>> 16;
      else this.put(old[i]!, old[i + 1]!);
    }
    let at = this.dense.indexOf(null);
    if (at < 0) at = this.dense.push(null) - 1;
    this.dense[at] = counts;
    this.denseOf[key] = at + 1;
    this.denseCount++;
    this.denseFilled += this.distinct[key]!;
  }

  /** Moves key's pairs back into the shared table. */
  private toSparse(key: number): void {
    const at = this.denseOf[key]! - 1;
    const counts = this.dense[at]!;
    this.dense[at] = null;
    this.denseOf[key] = 0;
    this.denseCount--;
    this.denseFilled -= this.distinct[key]!;
    for (let port = 0; port < PORTS; port++) {
      const r = counts[port]!;
      if (r === 0) continue;
      if (this.filled + 1 > (this.mask + 1) * MAX_LOAD) this.grow();
      this.put(key, port | (r << 16));
    }
  }

  /** Puts a pair known to be absent, with its slot word. */
  private put(key: number, word: number): void {
    const j = ~this.probe(key, word & 0xffff);
    this.slots[2 * j] = key;
    this.slots[2 * j + 1] = word;
    this.filled++;
  }

  private grow(): void {
    const old = this.slots;
    const n = (this.mask + 1) * 2;
    this.mask = n - 1;
    this.slots = new Int32Array(2 * n).fill(-1);
    this.filled = 0;
    for (let i = 0; i < old.length; i += 2) if (old[i] !== -1) this.put(old[i]!, old[i + 1]!);
  }
}
