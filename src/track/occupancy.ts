// Occupancy per destination key {proto, natIp, dstIp, dstPort}: live flows and the source
// ports they hold. Keys are interned to small integer ids when a flow is first seen (NEW or
// dump), the only moment strings are formatted; updates and destroys work on the id.
import type { PortKey } from '../types.js';
import { protoName } from '../source/names.js';
import { PortSet } from './port-set.js';

export class Occupancy {
  private readonly ids = new Map<string, number>();
  private strs: Array<string | undefined> = [];
  private free: number[] = [];
  /** Live flows per key id. */
  used = new Int32Array(64);
  /** 1 for a host-local key (natIp is the host's own source address). */
  local = new Uint8Array(64);
  /** Capacity per key id, filled by the tracker from the capacity resolver; 0 = unknown. */
  cap = new Int32Array(64);
  /** NAT addresses the key's rule spreads sources over (for the alert text). */
  addrs = new Uint16Array(64);
  /** Capacity version the cap entry was computed under. */
  capVer = new Int32Array(64);
  readonly ports = new PortSet();
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
    const known = this.ids.get(str);
    if (known !== undefined) return known;
    const k = this.free.length > 0 ? this.free.pop()! : this.high++;
    if (k >= this.used.length) this.growTo(k + 1);
    this.ids.set(str, k);
    this.strs[k] = str;
    this.used[k] = 0;
    this.local[k] = str.endsWith('|L') ? 1 : 0;
    this.capVer[k] = -1;
    this.count++;
    return k;
  }

  idOf(str: string): number {
    return this.ids.get(str) ?? -1;
  }

  exists(k: number): boolean {
    return this.strs[k] !== undefined;
  }

  /** Adds a flow holding `port`; true when the key went from idle to active. */
  add(k: number, port: number): boolean {
    this.ports.add(k, port);
    return ++this.used[k]! === 1;
  }

  /** Removes a flow; true when the key went idle. */
  remove(k: number, port: number): boolean {
    this.ports.delete(k, port);
    return --this.used[k]! === 0;
  }

  /** Forgets an idle key; its id is reused. */
  release(k: number): void {
    const s = this.strs[k];
    if (s === undefined || this.used[k] !== 0) return;
    this.ids.delete(s);
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
    let size = this.used.length;
    while (size < n) size *= 2;
    const grow = <T extends Int32Array | Uint8Array | Uint16Array>(a: T, make: (n: number) => T): T => {
      const b = make(size);
      b.set(a);
      return b;
    };
    this.used = grow(this.used, (n) => new Int32Array(n));
    this.local = grow(this.local, (n) => new Uint8Array(n));
    this.cap = grow(this.cap, (n) => new Int32Array(n));
    this.addrs = grow(this.addrs, (n) => new Uint16Array(n));
    this.capVer = grow(this.capVer, (n) => new Int32Array(n));
  }
}
