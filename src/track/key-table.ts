// The key table: per destination key {proto, natIp, dstIp, dstPort}, its live flows and the
// ports they hold (Occupancy), its per-second rings (KeyRings) and its capacity (resolved once
// per resolver version). The tracker admits and releases flows through it, the alert rules and
// `top` read it through the methods below; none of them touches the arrays behind it.
import { addrWords } from '../source/codec.js';
import { hasPorts } from '../source/names.js';
import { CtAddr, IPS_SRC_NAT, type ConntrackView } from '../source/types.js';
import type { PortKey } from '../types.js';
import { CapacityResolver, type Capacity } from './capacity.js';
import { Occupancy } from './occupancy.js';
import { C_DESTROY, C_DROP, C_NEW, KeyRings } from './rings.js';

export class KeyTable {
  private readonly occ = new Occupancy();
  private readonly rings: KeyRings;
  /** The namespace's own addresses: flows from them without SNAT are local port users. */
  private local = new Set<string>();
  /** The IPv4 ones as numbers (network order), for views with addrWord. */
  private local4 = new Set<number>();
  /** Local key id → sockets sock_diag counted beyond conntrack's flows (see setLocalSockets). */
  private sockExtra = new Map<number, number>();

  constructor(
    readonly capacity: CapacityResolver,
    ringKeys = 2048,
    ringSeconds?: number,
  ) {
    this.rings = new KeyRings(ringKeys, ringSeconds);
    // A key that lost its ring and has no live flow is forgotten (its id is reused).
    this.rings.onEvict = (k) => {
      if (this.occ.used(k) === 0) this.occ.release(k);
    };
  }

  setLocalAddrs(addrs: Iterable<string>): void {
    this.local = new Set(addrs);
    this.local4 = new Set();
    for (const a of this.local) {
      const w = a.includes('.') ? addrWords(a) : null;
      if (w) this.local4.add(w[0]!);
    }
  }

  // ---- The admit path (the tracker) ----

  /**
   * The key a conntrack record counts under, interned if new, or -1: no ports, or neither
   * source-NAT'd nor from one of the namespace's own addresses. IPv4 records of a view with
   * addrWord are decided and looked up by number (no text formatted for a known key); any other
   * record by its address text. Both give the same key.
   */
  keyOf(view: ConntrackView): number {
    const proto = view.proto;
    if (!hasPorts(proto)) return -1;
    const byNumber = view.family === 4 && view.addrWord !== undefined;
    const origSrc = byNumber ? view.addrWord!(CtAddr.OrigSrc, 0) : 0;
    const snat = (view.status & IPS_SRC_NAT) !== 0 || (byNumber ? view.addrWord!(CtAddr.ReplyDst, 0) !== origSrc : view.replyDst() !== view.origSrc());
    const local = !snat && (byNumber ? this.local4.has(origSrc) : this.local.has(view.origSrc()));
    if (!snat && !local) return -1;
    const dport = view.origDport;
    if (byNumber) {
      const nat = local ? origSrc : view.addrWord!(CtAddr.ReplyDst, 0);
      const dst = view.addrWord!(CtAddr.OrigDst, 0);
      const meta = Occupancy.metaV4(proto, dport, local);
      const k = this.occ.findV4(meta, nat, dst);
      if (k >= 0) return k;
      return this.occ.internV4(meta, nat, dst, Occupancy.keyString(proto, local ? view.origSrc() : view.replyDst(), view.origDst(), dport, local));
    }
    return this.occ.intern(Occupancy.keyString(proto, local ? view.origSrc() : view.replyDst(), view.origDst(), dport, local));
  }

  /** The source port a flow of key k holds: its own for a local key, the NAT port otherwise. */
  portOf(k: number, view: ConntrackView): number {
    return this.occ.isLocal(k) ? view.origSport : view.replyDport;
  }

  /** Counts a flow holding `port` under key k (isNew: a NEW event of second nowSec, not a dump record). */
  addFlow(k: number, port: number, nowSec: number, isNew: boolean): void {
    if (this.occ.add(k, port)) this.rings.setActive(k, true);
    if (isNew) this.rings.add(k, C_NEW, nowSec, 1, true);
    else if (!this.rings.has(k)) this.rings.touch(k, true);
  }

  /** Takes a flow out of key k. nowSec < 0: a dump sweep found it gone, not a DESTROY of that second. */
  removeFlow(k: number, port: number, nowSec: number): void {
    const idle = this.occ.remove(k, port);
    if (nowSec >= 0) this.rings.add(k, C_DESTROY, nowSec, 1, !idle);
    if (idle) {
      this.rings.setActive(k, false);
      if (!this.rings.has(k)) this.occ.release(k);
    }
  }

  /**
   * The host's own connected sockets per local key text (sock_diag). Conntrack does not track
   * local flows in a namespace without a stateful rule, so a local key counts max(conntrack
   * flows, sockets): the sockets beyond conntrack's flows are added as an extra that each
   * snapshot replaces (conntrack keeps moving its own part in between).
   */
  setLocalSockets(counts: ReadonlyMap<string, number>, nowSec: number): void {
    const seen = new Set<number>();
    for (const [text, n] of counts) {
      const k = this.occ.intern(text);
      seen.add(k);
      this.setExtra(k, n, nowSec);
    }
    for (const k of [...this.sockExtra.keys()]) if (!seen.has(k)) this.setExtra(k, 0, nowSec);
  }

  private setExtra(k: number, sockets: number, nowSec: number): void {
    const occ = this.occ;
    const old = this.sockExtra.get(k) ?? 0;
    const ct = occ.used(k) - old;
    const extra = Math.max(0, sockets - ct);
    if (extra === old) {
      if (extra === 0 && occ.used(k) === 0 && !this.rings.has(k)) occ.release(k);
      return;
    }
    const used = ct + extra;
    occ.setUsed(k, used);
    if (extra > 0) this.sockExtra.set(k, extra);
    else this.sockExtra.delete(k);
    if (extra > old) this.rings.add(k, C_NEW, nowSec, extra - old, true);
    else this.rings.add(k, C_DESTROY, nowSec, old - extra, used > 0);
    if (used === 0) {
      this.rings.setActive(k, false);
      if (!this.rings.has(k)) occ.release(k);
    } else {
      this.rings.setActive(k, true);
    }
  }

  // ---- Reading (alert rules, top) ----

  /** Calls fn for every key with live flows, with its flow count and capacity (0: unknown). */
  forEachBusy(fn: (k: number, used: number, capacity: number) => void): void {
    const occ = this.occ;
    for (let k = 0; k < occ.high; k++) {
      const used = occ.used(k);
      if (used > 0) fn(k, used, this.capacityOf(k));
    }
  }

  /** Calls fn for every key known, busy or idle (idle ones keep their rings until evicted). */
  forEachKey(fn: (k: number) => void): void {
    const occ = this.occ;
    for (let k = 0; k < occ.high; k++) if (occ.exists(k)) fn(k);
  }

  used(k: number): number {
    return this.occ.used(k);
  }

  /** Capacity of key k under the current resolver inputs (resolved once per resolver version). */
  capacityOf(k: number): number {
    const v = this.capacity.version;
    const cached = this.occ.cachedCapacity(k, v);
    if (cached >= 0) return cached;
    const key = this.occ.key(k);
    const c = this.occ.isLocal(k) ? this.capacity.local() : this.capacity.nat(key.proto, key.natIp, key.dstIp, key.dstPort);
    this.occ.cacheCapacity(k, v, c.capacity, c.addrs);
    return c.capacity;
  }

  /** Where key k's capacity comes from, and why when that is `unknown` or `default`. */
  capacityInfo(k: number): Capacity {
    return this.capacity.infoOf(this.occ.isLocal(k), this.occ.key(k));
  }

  /** NAT addresses the key's rule spreads internal sources over (1 for masquerade and local keys). */
  natAddrs(k: number): number {
    this.capacityOf(k);
    return this.occ.natAddrs(k);
  }

  key(k: number): PortKey {
    return this.occ.key(k);
  }

  isLocal(k: number): boolean {
    return this.occ.isLocal(k);
  }

  /**
   * Text naming key k while it lives. Ids are reused once a key is forgotten: a holder of an id
   * compares this text to learn whether the id still means its key.
   */
  identity(k: number): string {
    return this.occ.keyString(k);
  }

  /** NEW connections of key k in the second before nowSec (the last complete one). */
  newPerSec(k: number, nowSec: number): number {
    return this.rings.sum(k, C_NEW, nowSec - 1, 1);
  }

  /** Occupancy trend of key k over the last `seconds` seconds, flows per second (least squares). */
  trend(k: number, nowSec: number, seconds: number): number {
    return this.rings.slope(k, nowSec, seconds, this.occ.used(k));
  }

  /** Adds n kernel drops attributed to key k at second sec. */
  addDrops(k: number, sec: number, n: number): void {
    this.rings.add(k, C_DROP, sec, n, this.occ.used(k) > 0);
  }

  // ---- Inspection (tests, diagnostics) ----

  /** Id of the key whose identity() is `text`, or -1. */
  find(text: string): number {
    return this.occ.idOf(text);
  }

  /** Whether a flow of key k holds source port `port`. */
  holds(k: number, port: number): boolean {
    return this.occ.holds(k, port);
  }

  distinctPorts(k: number): number {
    return this.occ.distinctPorts(k);
  }

  /** Every key known (with or without live flows) by identity, with its flows. */
  snapshot(): Map<string, { used: number; distinct: number }> {
    const out = new Map<string, { used: number; distinct: number }>();
    for (let k = 0; k < this.occ.high; k++) {
      if (this.occ.exists(k)) out.set(this.occ.keyString(k), { used: this.occ.used(k), distinct: this.occ.distinctPorts(k) });
    }
    return out;
  }

  /** Keys interned. */
  get count(): number {
    return this.occ.count;
  }

  /** Keys holding a ring, and how many lost theirs to make room. */
  get ringUse(): { size: number; evicted: number } {
    return { size: this.rings.size, evicted: this.rings.evicted };
  }
}
