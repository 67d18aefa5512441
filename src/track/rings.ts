// Fixed-size rings of per-second counters (new, destroyed, drops), per key and global,
// preallocated as typed arrays. The number of keys with a ring is bounded; when full, the least
// recently active key loses its ring, idle keys (no live flows) before active ones, so a scan
// across millions of destinations costs a bounded amount of memory.

const RING_SECONDS = 300;

export const C_NEW = 0;
export const C_DESTROY = 1;
export const C_DROP = 2;
const SERIES = 3;

const IDLE = 0;
const ACTIVE = 1;

export class KeyRings {
  readonly slots: number;
  readonly maxKeys: number;
  private readonly data: Uint32Array;
  private readonly lastSec: Float64Array;
  /** lastSec % slots, kept with it: add() then needs no modulo of a double (V8 calls fmod for one). */
  private readonly lastIdx: Int32Array;
  /** First second the current owner wrote (bounds the trend window to the key's history). */
  private readonly firstSec: Float64Array;
  private readonly owner: Int32Array;
  private readonly prev: Int32Array;
  private readonly next: Int32Array;
  private readonly list: Uint8Array;
  private readonly head = [-1, -1];
  private readonly tail = [-1, -1];
  private readonly freeRings: number[] = [];
  private ringOf = new Int32Array(64).fill(-1);
  /** Keys that lost their ring to make room. */
  evicted = 0;
  /** Called with the key id whose ring was taken. */
  onEvict: (key: number) => void = () => {};

  constructor(maxKeys = 2048, slots = RING_SECONDS) {
    this.maxKeys = maxKeys;
    this.slots = slots;
    this.data = new Uint32Array(maxKeys * slots * SERIES);
    this.lastSec = new Float64Array(maxKeys).fill(-Infinity);
    this.lastIdx = new Int32Array(maxKeys);
    this.firstSec = new Float64Array(maxKeys);
    this.owner = new Int32Array(maxKeys).fill(-1);
    this.prev = new Int32Array(maxKeys).fill(-1);
    this.next = new Int32Array(maxKeys).fill(-1);
    this.list = new Uint8Array(maxKeys);
    for (let r = maxKeys - 1; r >= 0; r--) this.freeRings.push(r);
  }

  /** Keys holding a ring. */
  get size(): number {
    return this.maxKeys - this.freeRings.length;
  }

  has(key: number): boolean {
    return key < this.ringOf.length && this.ringOf[key]! >= 0;
  }

  /** Adds n to counter c of key at second sec, giving the key a ring if it has none. */
  add(key: number, c: number, sec: number, n: number, active: boolean): void {
    const r = this.touch(key, active);
    if (sec > this.lastSec[r]!) this.advance(r, sec);
    this.data[(r * SERIES + c) * this.slots + this.lastIdx[r]!]! += n;
  }

  /** Marks key as just active (moves it to the front of its list); returns its ring. */
  touch(key: number, active: boolean): number {
    let r = key < this.ringOf.length ? this.ringOf[key]! : -1;
    if (r < 0) return this.acquire(key, active);
    const l = active ? ACTIVE : IDLE;
    if (this.head[l] !== r) {
      this.unlink(r);
      this.link(r, l);
    }
    return r;
  }

  /** Moves a key between the idle and active lists without changing its recency much. */
  setActive(key: number, active: boolean): void {
    const r = key < this.ringOf.length ? this.ringOf[key]! : -1;
    if (r < 0) return;
    const l = active ? ACTIVE : IDLE;
    if (this.list[r] === l) return;
    this.unlink(r);
    this.link(r, l);
  }

  /** Drops the key's ring (the key was forgotten). */
  release(key: number): void {
    const r = key < this.ringOf.length ? this.ringOf[key]! : -1;
    if (r < 0) return;
    this.unlink(r);
    this.owner[r] = -1;
    this.ringOf[key] = -1;
    this.freeRings.push(r);
  }

  /** Sum of counter c over the seconds (nowSec - n, nowSec]. */
  sum(key: number, c: number, nowSec: number, n: number): number {
    const r = key < this.ringOf.length ? this.ringOf[key]! : -1;
    if (r < 0) return 0;
    const last = this.lastSec[r]!;
    const base = (r * SERIES + c) * this.slots;
    let total = 0;
    const from = Math.max(nowSec - n + 1, last - this.slots + 1);
    const to = Math.min(nowSec, last);
    for (let t = from; t <= to; t++) total += this.data[base + (t % this.slots)]!;
    return total;
  }

  /** Counter c at second t (0 when outside the ring). */
  at(key: number, c: number, t: number): number {
    const r = key < this.ringOf.length ? this.ringOf[key]! : -1;
    if (r < 0) return 0;
    const last = this.lastSec[r]!;
    if (t > last || t <= last - this.slots) return 0;
    return this.data[(r * SERIES + c) * this.slots + (t % this.slots)]!;
  }

  /**
   * Least-squares slope (flows per second) of the key's occupancy over the last n seconds,
   * reconstructed backwards from the current `used` and the per-second new − destroyed.
   */
  slope(key: number, nowSec: number, n: number, used: number): number {
    const r = key < this.ringOf.length ? this.ringOf[key]! : -1;
    if (r < 0) return 0;
    // Seconds before the key's first activity are unknown, not flat: leave them out.
    n = Math.min(n, nowSec - this.firstSec[r]! + 1);
    if (n < 2) return 0;
    let h = used;
    let sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (let i = 0; i < n; i++) {
      const x = n - 1 - i; // x of second nowSec - i
      sx += x; sy += h; sxx += x * x; sxy += x * h;
      const t = nowSec - i;
      h -= this.at(key, C_NEW, t) - this.at(key, C_DESTROY, t);
    }
    const d = n * sxx - sx * sx;
    return d === 0 ? 0 : (n * sxy - sx * sy) / d;
  }

  private advance(r: number, sec: number): void {
    const last = this.lastSec[r]!;
    if (sec <= last) return; // clock stepped back: keep writing into the newest second
    if (last === -Infinity) this.firstSec[r] = sec;
    const S = this.slots;
    const gap = sec - last;
    for (let c = 0; c < SERIES; c++) {
      const base = (r * SERIES + c) * S;
      if (gap >= S) this.data.fill(0, base, base + S);
      else for (let t = last + 1; t <= sec; t++) this.data[base + (t % S)] = 0;
    }
    this.lastSec[r] = sec;
    this.lastIdx[r] = sec % S;
  }

  private acquire(key: number, active: boolean): number {
    let r = this.freeRings.pop();
    if (r === undefined) {
      r = this.tail[IDLE]! >= 0 ? this.tail[IDLE]! : this.tail[ACTIVE]!;
      const victim = this.owner[r]!;
      this.unlink(r);
      this.ringOf[victim] = -1;
      this.evicted++;
      this.onEvict(victim);
    }
    if (key >= this.ringOf.length) {
      let n = this.ringOf.length;
      while (n <= key) n *= 2;
      const a = new Int32Array(n).fill(-1);
      a.set(this.ringOf);
      this.ringOf = a;
    }
    this.owner[r] = key;
    this.ringOf[key] = r;
    this.lastSec[r] = -Infinity;
    this.link(r, active ? ACTIVE : IDLE);
    return r;
  }

  private link(r: number, l: number): void {
    this.list[r] = l;
    this.prev[r] = -1;
    this.next[r] = this.head[l]!;
    if (this.head[l]! >= 0) this.prev[this.head[l]!] = r;
    this.head[l] = r;
    if (this.tail[l]! < 0) this.tail[l] = r;
  }

  private unlink(r: number): void {
    const l = this.list[r]!;
    const p = this.prev[r]!;
    const n = this.next[r]!;
    if (p >= 0) this.next[p] = n;
    else this.head[l] = n;
    if (n >= 0) this.prev[n] = p;
    else this.tail[l] = p;
    this.prev[r] = -1;
    this.next[r] = -1;
  }
}
