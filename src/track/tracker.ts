// The live state: flow table + occupancy per key + per-second rings, fed by conntrack batches.
//
// Dump/event reconciliation (a dump runs while live events keep arriving):
// - dumpBegin starts a generation; every flow seen in the dump or created/updated by an event
//   since then is stamped with it.
// - a DESTROY during a dump leaves a tombstone, so a Dump record of that id arriving later
//   (the dump read the table before the destroy) does not resurrect it;
// - a Dump record for a known id only refreshes it;
// - dumpEnd removes flows not stamped (the kernel no longer has them: their DESTROY was lost)
//   and clears tombstones. After a resync, occupancy equals the kernel's live flows again.
import { CtAddr, CtKind, IPS_SRC_NAT, type ConntrackView } from '../source/types.js';
import { addrWords } from '../source/codec.js';
import { CapacityResolver } from './capacity.js';
import { FlowTable, F_EVENT, F_LIVE, F_LOCAL, F_TOMB } from './flow-table.js';
import { Occupancy } from './occupancy.js';
import { hasPorts } from '../source/names.js';
import { C_DESTROY, C_DROP, C_NEW, KeyRings } from './rings.js';

export interface TrackerOptions {
  capacity?: CapacityResolver;
  /** Keys that keep per-second rings (LRU beyond that). */
  ringKeys?: number;
  ringSeconds?: number;
  /** Initial flow-table slots (grows by doubling). */
  initialFlows?: number;
  localAddrs?: Iterable<string>;
}

export interface TrackerTotals {
  news: number;
  updates: number;
  destroys: number;
  dumpRecords: number;
  /** DESTROY for an id we never saw (outside a dump). */
  unknownDestroys: number;
  /** Dump records ignored because the flow was destroyed meanwhile. */
  staleDumpRecords: number;
  /** Flows removed at dumpEnd because the dump no longer had them. */
  resyncRemoved: number;
}

export class Tracker {
  readonly flows: FlowTable;
  readonly occ = new Occupancy();
  readonly rings: KeyRings;
  readonly capacity: CapacityResolver;
  readonly totals: TrackerTotals = {
    news: 0, updates: 0, destroys: 0, dumpRecords: 0, unknownDestroys: 0, staleDumpRecords: 0, resyncRemoved: 0,
  };
  private local = new Set<string>();
  /** The IPv4 ones as numbers (network order), for views with addrWord. */
  private local4 = new Set<number>();
  private gen = 0;
  private dumping = false;
  /** Local key id → sockets sock_diag counted beyond conntrack's flows (see setLocalSockets). */
  private sockExtra = new Map<number, number>();

  constructor(opts: TrackerOptions = {}) {
    this.flows = new FlowTable(opts.initialFlows ?? 1024);
    this.rings = new KeyRings(opts.ringKeys ?? 2048, opts.ringSeconds);
    this.capacity = opts.capacity ?? new CapacityResolver();
    if (opts.localAddrs) this.setLocalAddrs(opts.localAddrs);
    this.rings.onEvict = (k) => {
      if (this.occ.used[k] === 0) this.occ.release(k);
    };
  }

  /** The namespace's own addresses: flows from them without SNAT are local port users. */
  setLocalAddrs(addrs: Iterable<string>): void {
    this.local = new Set(addrs);
    this.local4 = new Set();
    for (const a of this.local) {
      const w = a.includes('.') ? addrWords(a) : null;
      if (w) this.local4.add(w[0]!);
    }
  }

  get inDump(): boolean {
    return this.dumping;
  }

  /** Live flows tracked (tombstones excluded). */
  get liveFlows(): number {
    return this.flows.size;
  }

  onConntrack(view: ConntrackView, nowSec: number): void {
    const flows = this.flows;
    const n = view.count;
    for (let i = 0; i < n; i++) {
      view.seek(i);
      const kind = view.kind;
      const id = view.id;
      const zone = view.zone;
      const slot = flows.find(id, zone);
      if (kind === CtKind.Destroy) {
        this.totals.destroys++;
        if (slot >= 0) {
          if (flows.flagsAt(slot) & F_LIVE) this.release(slot, nowSec);
          if (this.dumping) flows.setFlags(slot, F_TOMB);
          else flows.remove(slot);
        } else if (this.dumping) {
          flows.insert(id, zone, F_TOMB, -1, 0, this.gen);
        } else {
          this.totals.unknownDestroys++;
        }
        continue;
      }
      if (kind === CtKind.Dump) this.totals.dumpRecords++;
      else if (kind === CtKind.New) this.totals.news++;
      else this.totals.updates++;
      if (slot >= 0) {
        const f = flows.flagsAt(slot);
        if (f & F_LIVE) {
          flows.setGen(slot, this.gen);
          // A NEW for a live id means its DESTROY was lost and the id reused: re-key it. A dump
          // record whose source port differs is the same case seen by a resync (checked on
          // numbers only: no string is formatted for a flow we already know).
          let s = slot;
          if (kind === CtKind.New || (kind === CtKind.Dump && !(f & F_EVENT) && this.portChanged(view, slot, f))) {
            this.release(slot, nowSec);
            flows.remove(slot);
            s = this.admit(view, id, zone, nowSec, true);
          }
          if (this.dumping && kind !== CtKind.Dump) this.markEvent(s);
          continue;
        }
        // Tombstone: a dump record is stale; an event means the id lives (again).
        if (kind === CtKind.Dump) {
          this.totals.staleDumpRecords++;
          continue;
        }
        flows.remove(slot);
      }
      const s = this.admit(view, id, zone, nowSec, kind === CtKind.New);
      if (this.dumping && kind !== CtKind.Dump) this.markEvent(s);
    }
  }

  /** See F_EVENT; cleared by the sweep at dumpEnd. */
  private markEvent(slot: number): void {
    this.flows.setFlags(slot, this.flows.flagsAt(slot) | F_EVENT);
  }

  /** Starts a dump generation. A second begin before the end restarts it. */
  dumpBegin(): void {
    this.gen = (this.gen + 1) & 0xff;
    this.dumping = true;
  }

  /** Ends the dump: drops flows the dump did not confirm; returns how many. */
  dumpEnd(): number {
    if (!this.dumping) return 0;
    this.dumping = false;
    let removed = 0;
    const flows = this.flows;
    const gen = this.gen;
    flows.sweep((s) => {
      const f = flows.flagsAt(s);
      if (!(f & F_LIVE)) return true;
      if (f & F_EVENT) flows.setFlags(s, f & ~F_EVENT);
      if (flows.genAt(s) === gen) return false;
      removed++;
      this.release(s, -1);
      return true;
    });
    this.totals.resyncRemoved += removed;
    return removed;
  }

  /**
   * The host's own connected sockets per local key string (sock_diag). Conntrack does not
   * track local flows in a namespace without a stateful rule, so a local key counts
   * max(conntrack flows, sockets): the sockets beyond conntrack's flows are added as an extra
   * that each snapshot replaces (conntrack keeps moving its own part in between).
   */
  setLocalSockets(counts: ReadonlyMap<string, number>, nowSec: number): void {
    const occ = this.occ;
    const seen = new Set<number>();
    for (const [str, n] of counts) {
      const k = occ.intern(str);
      seen.add(k);
      this.setExtra(k, n, nowSec);
    }
    for (const k of [...this.sockExtra.keys()]) if (!seen.has(k)) this.setExtra(k, 0, nowSec);
  }

  private setExtra(k: number, sockets: number, nowSec: number): void {
    const occ = this.occ;
    const old = this.sockExtra.get(k) ?? 0;
    const ct = occ.used[k]! - old;
    const extra = Math.max(0, sockets - ct);
    if (extra === old) {
      if (extra === 0 && occ.used[k] === 0 && !this.rings.has(k)) occ.release(k);
      return;
    }
    occ.used[k] = ct + extra;
    if (extra > 0) this.sockExtra.set(k, extra);
    else this.sockExtra.delete(k);
    if (extra > old) this.rings.add(k, C_NEW, nowSec, extra - old, true);
    else this.rings.add(k, C_DESTROY, nowSec, old - extra, occ.used[k]! > 0);
    if (occ.used[k] === 0) {
      this.rings.setActive(k, false);
      if (!this.rings.has(k)) occ.release(k);
    } else {
      this.rings.setActive(k, true);
    }
  }

  /** Adds drops attributed to key k at second sec. */
  addDrops(k: number, sec: number, n: number): void {
    this.rings.add(k, C_DROP, sec, n, this.occ.used[k]! > 0);
  }

  /** Capacity of key k under the current resolver inputs (cached per key). */
  capacityOf(k: number): number {
    const occ = this.occ;
    if (occ.capVer[k] !== this.capacity.version) {
      const key = occ.key(k);
      const c = occ.local[k] ? this.capacity.local() : this.capacity.nat(key.proto, key.natIp, key.dstIp, key.dstPort);
      occ.cap[k] = c.capacity;
      occ.addrs[k] = c.addrs;
      occ.capVer[k] = this.capacity.version;
    }
    return occ.cap[k]!;
  }

  /** Inserts the flow and counts it under its key; returns its slot. */
  private admit(view: ConntrackView, id: number, zone: number, nowSec: number, isNew: boolean): number {
    let key = -1;
    let port = 0;
    let flags = F_LIVE;
    const proto = view.proto;
    if (hasPorts(proto) && view.family === 4 && view.addrWord !== undefined) {
      // By number: the same decisions as the text path below, without formatting.
      const origSrc = view.addrWord(CtAddr.OrigSrc, 0);
      const natIp = view.addrWord(CtAddr.ReplyDst, 0);
      if ((view.status & IPS_SRC_NAT) !== 0 || natIp !== origSrc) {
        key = this.keyV4(view, proto, natIp, false);
        port = view.replyDport;
      } else if (this.local4.has(origSrc)) {
        key = this.keyV4(view, proto, origSrc, true);
        port = view.origSport;
        flags |= F_LOCAL;
      }
    } else if (hasPorts(proto)) {
      const origSrc = view.origSrc();
      const natIp = view.replyDst();
      if ((view.status & IPS_SRC_NAT) !== 0 || natIp !== origSrc) {
        key = this.occ.intern(Occupancy.keyString(proto, natIp, view.origDst(), view.origDport, false));
        port = view.replyDport;
      } else if (this.local.has(origSrc)) {
        key = this.occ.intern(Occupancy.keyString(proto, origSrc, view.origDst(), view.origDport, true));
        port = view.origSport;
        flags |= F_LOCAL;
      }
    }
    const slot = this.flows.insert(id, zone, flags, key, port, this.gen);
    if (key < 0) return slot;
    if (this.occ.add(key, port)) this.rings.setActive(key, true);
    if (isNew) this.rings.add(key, C_NEW, nowSec, 1, true);
    else if (!this.rings.has(key)) this.rings.touch(key, true);
    return slot;
  }

  /** Key id of an IPv4 record's key; its text is formatted only when the key is new. */
  private keyV4(view: ConntrackView, proto: number, natIp: number, local: boolean): number {
    const dst = view.addrWord!(CtAddr.OrigDst, 0);
    const dport = view.origDport;
    const meta = Occupancy.metaV4(proto, dport, local);
    let k = this.occ.findV4(meta, natIp, dst);
    if (k < 0) {
      const nat = local ? view.origSrc() : view.replyDst();
      k = this.occ.internV4(meta, natIp, dst, Occupancy.keyString(proto, nat, view.origDst(), dport, local));
    }
    return k;
  }

  private portChanged(view: ConntrackView, slot: number, f: number): boolean {
    if (this.flows.keyAt(slot) < 0) return false;
    return this.flows.portAt(slot) !== (f & F_LOCAL ? view.origSport : view.replyDport);
  }

  /**
   * Takes the flow in slot out of occupancy (the slot itself is left to the caller). nowSec < 0:
   * a dump sweep found it gone, which is not a DESTROY of that second.
   */
  private release(slot: number, nowSec: number): void {
    const key = this.flows.keyAt(slot);
    if (key < 0) return;
    const idle = this.occ.remove(key, this.flows.portAt(slot));
    if (nowSec >= 0) this.rings.add(key, C_DESTROY, nowSec, 1, !idle);
    if (idle) {
      this.rings.setActive(key, false);
      if (!this.rings.has(key)) this.occ.release(key);
    }
  }
}
