// Occupancy per destination key {proto, natIp, dstIp, dstPort}: live flows and the source
// ports they hold. Keys are interned to small integer ids when a flow is first seen (NEW or
// dump), the only moment strings are formatted; updates and destroys work on the id. IPv4 keys
// are found by their numbers (findV4), so a NEW record of a key already interned formats no
// text at all (on real traffic most NEW records are to a key that exists); only other keys
// (IPv6) are in the string map, which keeps the memory per key below the string path's.
import type { PortKey } from '../types.js';
import { addrWords } from '../source/codec.js';
import { IPPROTO_DCCP, IPPROTO_SCTP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_UDPLITE, protoName } from '../source/names.js';
import { PortSet } from './port-set.js';
import { hash3 } from './seeded-hash.js';

/** Protocols with ports (the only ones with keys) by name, to read a key string back. */
const PORT_PROTOS = new Map([IPPROTO_TCP, IPPROTO_UDP, IPPROTO_DCCP, IPPROTO_SCTP, IPPROTO_UDPLITE].map((p) => [protoName(p), p]));

const ip4Text = (n: number) => `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;

export class Occupancy {
  /** Keys that are not IPv4 (those are in the numeric index only). */
  private readonly ids = new Map<string, number>();
  private strs: Array<string | undefined> = [];
  private free: number[] = [];
  /** Live flows per key id. */
  private usedBy = new Int32Array(64);
  /** 1 for a host-local key (natIp is the host's own source address). */
  private local = new Uint8Array(64);
  /** Capacity per key id, cached by KeyTable from the capacity resolver; 0 = unknown. */
  private cap = new Int32Array(64);
  /** NAT addresses the key's rule spreads sources over (for the alert text). */
  private addrs = new Uint16Array(64);
  /** Capacity version the cap entry was computed under. */
  private capVer = new Int32Array(64);
  private readonly ports = new PortSet();
  /** IPv4 keys by number: open addressing over key ids (-1 empty), load ≤ 0.5. */
  private v4Slots = new Int32Array(64).fill(-1);
  private v4Filled = 0;
  /** Per key id: [meta, natIp, dstIp] of its entry in v4Slots; meta 0 = none. */
  private v4Words = new Int32Array(64 * 3);
  /** Interned keys. */
  count = 0;
  /** Key ids handed out so far (upper bound of ids in use). */
  high = 0;

  /** Key string: proto|natIp|dstIp|dstPort|L|N (L = local). */
  static keyString(proto: number, natIp: string, dstIp: string, dstPort: number, local: boolean): string {
    return `${protoName(proto)}|${natIp}|${dstIp}|${dstPort}|${local ? 'L' : 'N'}`;
  }

  /** Id of the key, interning it if new (a released id is reused first). */
  intern(str: string): number {
    if (this.parseV4(str)) {
      const known = this.findV4(this.pMeta, this.pNat, this.pDst);
      return known >= 0 ? known : this.internV4(this.pMeta, this.pNat, this.pDst, str);
    }
    const known = this.ids.get(str);
    if (known !== undefined) return known;
    const k = this.newId(str);
    this.ids.set(str, k);
    return k;
  }

  /** Interns an IPv4 key that findV4 does not know; str is its keyString. */
  internV4(meta: number, nat: number, dst: number, str: string): number {
    const k = this.newId(str);
    this.addV4(k, meta, nat, dst);
    return k;
  }

  private newId(str: string): number {
    const k = this.free.length > 0 ? this.free.pop()! : this.high++;
    if (k >= this.usedBy.length) this.growTo(k + 1);
    this.strs[k] = str;
    this.usedBy[k] = 0;
    this.local[k] = str.endsWith('|L') ? 1 : 0;
    this.capVer[k] = -1;
    this.count++;
    return k;
  }

  // parseV4's result (no object per call).
  private pMeta = 0;
  private pNat = 0;
  private pDst = 0;

  /** Reads an IPv4 key string back into numbers; false for any other key (or not exactly keyString's text). */
  private parseV4(str: string): boolean {
    const p = str.split('|');
    if (p.length !== 5 || !p[1]!.includes('.') || !p[2]!.includes('.')) return false;
    const proto = PORT_PROTOS.get(p[0]!);
    const nat = addrWords(p[1]!)?.[0];
    const dst = addrWords(p[2]!)?.[0];
    const port = Number(p[3]);
    if (proto === undefined || nat === undefined || dst === undefined || (p[4] !== 'L' && p[4] !== 'N')) return false;
    if (ip4Text(nat) !== p[1] || ip4Text(dst) !== p[2] || String(port & 0xffff) !== p[3]) return false;
    this.pMeta = Occupancy.metaV4(proto, port, p[4] === 'L');
    this.pNat = nat;
    this.pDst = dst;
    return true;
  }

  /** Numeric part of an IPv4 key (proto, dstPort, local); never 0, which marks "no entry". */
  static metaV4(proto: number, dstPort: number, local: boolean): number {
    return (proto | (local ? 0x100 : 0) | 0x200 | (dstPort << 16)) | 0;
  }

  // Seeded per process: a client picks dstIp and dstPort, so a fixed hash could be flooded.
  private homeV4(meta: number, nat: number, dst: number): number {
    return hash3(meta, nat, dst) & (this.v4Slots.length - 1);
  }

  /** Mean probes a lookup of an IPv4 key takes (1 = none collided): the hash's quality, for tests. */
  v4ProbeMean(): number {
    const slots = this.v4Slots;
    const w = this.v4Words;
    const mask = slots.length - 1;
    let sum = 0;
    for (let i = 0; i < slots.length; i++) {
      const k = slots[i]!;
      if (k >= 0) sum += ((i - this.homeV4(w[k * 3]!, w[k * 3 + 1]!, w[k * 3 + 2]!)) & mask) + 1;
    }
    return this.v4Filled ? sum / this.v4Filled : 0;
  }

  /** Id of the IPv4 key (metaV4, natIp, dstIp as u32), or -1 if not interned by number. */
  findV4(meta: number, nat: number, dst: number): number {
    nat |= 0;
    dst |= 0;
    const w = this.v4Words;
    // Most records go to the key of the record before (one busy destination): try it first,
    // no hash. The guess is checked against the words, which only that key's entry holds (a
    // forgotten key's meta word is 0), so it needs no invalidation.
    const last = this.lastV4;
    if (w[last * 3] === meta && w[last * 3 + 1] === nat && w[last * 3 + 2] === dst) return last;
    const slots = this.v4Slots;
    const mask = slots.length - 1;
    for (let i = this.homeV4(meta, nat, dst); ; i = (i + 1) & mask) {
      const k = slots[i]!;
      if (k < 0) return -1;
      if (w[k * 3] === meta && w[k * 3 + 1] === nat && w[k * 3 + 2] === dst) {
        this.lastV4 = k;
        return k;
      }
    }
  }

  /** The key findV4 found last (a guess it checks before hashing). */
  private lastV4 = 0;

  private addV4(k: number, meta: number, nat: number, dst: number): void {
    if ((this.v4Filled + 1) * 2 > this.v4Slots.length) this.rehashV4(this.v4Slots.length * 2);
    this.v4Words[k * 3] = meta;
    this.v4Words[k * 3 + 1] = nat;
    this.v4Words[k * 3 + 2] = dst;
    this.placeV4(k);
    this.v4Filled++;
  }

  private placeV4(k: number): void {
    const w = this.v4Words;
    const mask = this.v4Slots.length - 1;
    let i = this.homeV4(w[k * 3]!, w[k * 3 + 1]!, w[k * 3 + 2]!);
    while (this.v4Slots[i]! >= 0) i = (i + 1) & mask;
    this.v4Slots[i] = k;
  }

  private removeV4(k: number): void {
    const w = this.v4Words;
    if (w[k * 3] === 0) return;
    const slots = this.v4Slots;
    const mask = slots.length - 1;
    let i = this.homeV4(w[k * 3]!, w[k * 3 + 1]!, w[k * 3 + 2]!);
    while (slots[i] !== k) i = (i + 1) & mask;
    // Backward-shift deletion (as in FlowTable.remove): no deleted markers.
    let hole = i;
    for (let j = (i + 1) & mask; slots[j]! >= 0; j = (j + 1) & mask) {
      const m = slots[j]!;
      const h = this.homeV4(w[m * 3]!, w[m * 3 + 1]!, w[m * 3 + 2]!);
      const between = hole <= j ? h > hole && h <= j : h > hole || h <= j;
      if (!between) {
        slots[hole] = m;
        hole = j;
      }
    }
    slots[hole] = -1;
    w[k * 3] = 0;
    this.v4Filled--;
  }

  private rehashV4(n: number): void {
    const old = this.v4Slots;
    this.v4Slots = new Int32Array(n).fill(-1);
    for (let i = 0; i < old.length; i++) if (old[i]! >= 0) this.placeV4(old[i]!);
  }

  idOf(str: string): number {
    if (this.parseV4(str)) return this.findV4(this.pMeta, this.pNat, this.pDst);
    return this.ids.get(str) ?? -1;
  }

  exists(k: number): boolean {
    return this.strs[k] !== undefined;
  }

  /** Adds a flow holding `port`; true when the key went from idle to active. */
  add(k: number, port: number): boolean {
    this.ports.add(k, port);
    return ++this.usedBy[k]! === 1;
  }

  /** Removes a flow; true when the key went idle. */
  remove(k: number, port: number): boolean {
    this.ports.delete(k, port);
    return --this.usedBy[k]! === 0;
  }

  /** Sets key k's count outright (flows without a port of their own: sockets sock_diag counted). */
  setUsed(k: number, n: number): void {
    this.usedBy[k] = n;
  }

  /** Live flows under key k. */
  used(k: number): number {
    return this.usedBy[k] ?? 0;
  }

  /** Whether key k counts the host's own connections (natIp is its source address). */
  isLocal(k: number): boolean {
    return this.local[k] === 1;
  }

  /** Whether a flow of key k holds source port `port`. */
  holds(k: number, port: number): boolean {
    return this.ports.has(k, port);
  }

  /** Distinct source ports key k holds. */
  distinctPorts(k: number): number {
    return this.ports.distinct[k] ?? 0;
  }

  /** The capacity cached for key k under resolver `version`, or -1 when it must be resolved. */
  cachedCapacity(k: number, version: number): number {
    return this.capVer[k] === version ? this.cap[k]! : -1;
  }

  cacheCapacity(k: number, version: number, capacity: number, addrs: number): void {
    this.cap[k] = capacity;
    this.addrs[k] = addrs;
    this.capVer[k] = version;
  }

  /** NAT addresses behind key k's capacity (as last cached). */
  natAddrs(k: number): number {
    return this.addrs[k]!;
  }

  /** Forgets an idle key; its id is reused. */
  release(k: number): void {
    const s = this.strs[k];
    if (s === undefined || this.usedBy[k] !== 0) return;
    if (this.v4Words[k * 3] !== 0) this.removeV4(k);
    else this.ids.delete(s);
    this.strs[k] = undefined;
    this.free.push(k);
    this.count--;
  }

  keyString(k: number): string {
    return this.strs[k] ?? '';
  }

  key(k: number): PortKey {
    const p = this.keyString(k).split('|');
    return { proto: p[0]!, natIp: p[1]!, dstIp: p[2]!, dstPort: Number(p[3]) };
  }

  private growTo(n: number): void {
    let size = this.usedBy.length;
    while (size < n) size *= 2;
    const grow = <T extends Int32Array | Uint8Array | Uint16Array>(a: T, make: (n: number) => T): T => {
      const b = make(size);
      b.set(a);
      return b;
    };
    this.usedBy = grow(this.usedBy, (n) => new Int32Array(n));
    this.local = grow(this.local, (n) => new Uint8Array(n));
    this.cap = grow(this.cap, (n) => new Int32Array(n));
    this.addrs = grow(this.addrs, (n) => new Uint16Array(n));
    this.capVer = grow(this.capVer, (n) => new Int32Array(n));
    const w = new Int32Array(size * 3);
    w.set(this.v4Words);
    this.v4Words = w;
  }
}
