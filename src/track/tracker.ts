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
import { CtKind, type ConntrackView } from '../source/types.js';
import { CapacityResolver } from './capacity.js';
import { FlowTable, F_EVENT, F_LIVE, F_LOCAL, F_TOMB } from './flow-table.js';
import { KeyTable } from './key-table.js';

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
  /** Occupancy, rings and capacity per destination key: what the alert rules and `top` read. */
  readonly keys: KeyTable;
  readonly totals: TrackerTotals = {
    news: 0, updates: 0, destroys: 0, dumpRecords: 0, unknownDestroys: 0, staleDumpRecords: 0, resyncRemoved: 0,
  };
  private gen = 0;
  private dumping = false;

  constructor(opts: TrackerOptions = {}) {
    this.flows = new FlowTable(opts.initialFlows ?? 1024);
    this.keys = new KeyTable(opts.capacity ?? new CapacityResolver(), opts.ringKeys, opts.ringSeconds);
    if (opts.localAddrs) this.setLocalAddrs(opts.localAddrs);
  }

  get capacity(): CapacityResolver {
    return this.keys.capacity;
  }

  /** The namespace's own addresses: flows from them without SNAT are local port users. */
  setLocalAddrs(addrs: Iterable<string>): void {
    this.keys.setLocalAddrs(addrs);
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
      const at = flows.lookup(id, zone);
      const slot = at >= 0 ? at : -1;
      if (kind === CtKind.Destroy) {
        this.totals.destroys++;
        if (slot >= 0) {
          if (flows.flagsAt(slot) & F_LIVE) this.release(slot, nowSec);
          if (this.dumping) flows.setFlags(slot, F_TOMB);
          else flows.remove(slot);
        } else if (this.dumping) {
          flows.insert(id, zone, F_TOMB, -1, 0, this.gen, ~at);
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
            s = this.admit(view, id, zone, nowSec, true, -1);
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
      // keyOf (inside admit) leaves the flow table alone: the vacant slot found above still holds.
      const s = this.admit(view, id, zone, nowSec, kind === CtKind.New, slot >= 0 ? -1 : ~at);
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

  /** The host's own connected sockets per local key text (sock_diag); see KeyTable.setLocalSockets. */
  setLocalSockets(counts: ReadonlyMap<string, number>, nowSec: number): void {
    this.keys.setLocalSockets(counts, nowSec);
  }

  /** Inserts the flow and counts it under its key; returns its slot. */
  private admit(view: ConntrackView, id: number, zone: number, nowSec: number, isNew: boolean, vacant: number): number {
    const k = this.keys.keyOf(view);
    if (k < 0) return this.flows.insert(id, zone, F_LIVE, -1, 0, this.gen, vacant);
    const port = this.keys.portOf(k, view);
    const slot = this.flows.insert(id, zone, this.keys.isLocal(k) ? F_LIVE | F_LOCAL : F_LIVE, k, port, this.gen, vacant);
    this.keys.addFlow(k, port, nowSec, isNew);
    return slot;
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
    if (key >= 0) this.keys.removeFlow(key, this.flows.portAt(slot), nowSec);
  }
}
