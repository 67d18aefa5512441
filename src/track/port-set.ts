// The set of (key id, source port) pairs in use, with a reference count per pair, in one
// open-addressing table shared by all keys: memory follows live flows, not keys × 65536 bits,
// so a scan across a million destinations costs what its flows cost.
import { hash2 } from './seeded-hash.js';

const MAX_LOAD = 0.7;

export class PortSet {
  private mask: number;
  private keyIds: Int32Array;
  private ports: Uint16Array;
  private refs: Uint32Array;
  private filled = 0;
  /** Distinct ports in use per key id (grown on demand). */
  distinct: Int32Array = new Int32Array(64);

  constructor(initialSlots = 1024) {
    let n = 16;
    while (n < initialSlots) n <<= 1;
    this.mask = n - 1;
    this.keyIds = new Int32Array(n).fill(-1);
    this.ports = new Uint16Array(n);
    this.refs = new Uint32Array(n);
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
    let sum = 0;
    for (let i = 0; i <= this.mask; i++) {
      if (this.keyIds[i] !== -1) sum += ((i - this.home(this.keyIds[i]!, this.ports[i]!)) & this.mask) + 1;
    }
    return this.filled ? sum / this.filled : 0;
  }

  private slotOf(key: number, port: number): number {
    const { keyIds, ports, mask } = this;
    let i = this.home(key, port);
    while (keyIds[i] !== -1) {
      if (keyIds[i] === key && ports[i] === port) return i;
      i = (i + 1) & mask;
    }
    return -1;
  }

  has(key: number, port: number): boolean {
    return this.slotOf(key, port) >= 0;
  }

  add(key: number, port: number): void {
    // One probe: the empty slot that ends an unsuccessful search is where the pair goes.
    const { keyIds, ports, mask } = this;
    let i = this.home(key, port);
    for (let k = keyIds[i]!; k !== -1; k = keyIds[i]!) {
      if (k === key && ports[i] === port) {
        this.refs[i]!++;
        return;
      }
      i = (i + 1) & mask;
    }
    if (this.filled + 1 > (this.mask + 1) * MAX_LOAD) {
      this.grow();
      i = this.home(key, port);
      while (this.keyIds[i] !== -1) i = (i + 1) & this.mask;
    }
    this.keyIds[i] = key;
    this.ports[i] = port;
    this.refs[i] = 1;
    this.filled++;
    if (key >= this.distinct.length) {
      const d = new Int32Array(Math.max(key + 1, this.distinct.length * 2));
      d.set(this.distinct);
      this.distinct = d;
    }
    this.distinct[key]!++;
  }

  delete(key: number, port: number): void {
    const i = this.slotOf(key, port);
    if (i < 0) return;
    if (--this.refs[i]! > 0) return;
    this.distinct[key]!--;
    this.filled--;
    const { keyIds, ports, refs, mask } = this;
    let hole = i;
    let j = (i + 1) & mask;
    while (keyIds[j] !== -1) {
      const k = this.home(keyIds[j]!, ports[j]!);
      const between = hole <= j ? k > hole && k <= j : k > hole || k <= j;
      if (!between) {
        keyIds[hole] = keyIds[j]!;
        ports[hole] = ports[j]!;
        refs[hole] = refs[j]!;
        hole = j;
      }
      j = (j + 1) & mask;
    }
    keyIds[hole] = -1;
  }

  private grow(): void {
    const { keyIds, ports, refs } = this;
    const n = (this.mask + 1) * 2;
    this.mask = n - 1;
    this.keyIds = new Int32Array(n).fill(-1);
    this.ports = new Uint16Array(n);
    this.refs = new Uint32Array(n);
    for (let i = 0; i < keyIds.length; i++) {
      if (keyIds[i] === -1) continue;
      let j = this.home(keyIds[i]!, ports[i]!);
      while (this.keyIds[j] !== -1) j = (j + 1) & this.mask;
      this.keyIds[j] = keyIds[i]!;
      this.ports[j] = ports[i]!;
      this.refs[j] = refs[i]!;
    }
  }
}
