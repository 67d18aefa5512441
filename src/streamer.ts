// The running pipeline: an EventSource feeding the tracker, the alert rules evaluated each
// second against the kernel counters, and the results as 'alert' / 'stats' / 'event' (an
// EventEmitter and an async iterator). This is what the server, `tail` and embedders consume.
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { AlertRules } from './alert/rules.js';
import { addLoss, lostEvents, zeroLoss } from './alert/event-loss.js';
import { systemClock, type Clock } from './alert/clock.js';
import { thresholds as makeThresholds, type Thresholds } from './alert/thresholds.js';
import { NatwatchError } from './errors.js';
import { netnsPath } from './netns.js';
import { CtKind, type ConntrackView, type CounterSnapshot, type EventSource, type LossReport, type NflogView } from './source/types.js';
import { logDenies, readInterfaces, RulesetWatcher } from './source/ruleset.js';
import { watchKernelChanges, type KernelWatch } from './source/kernel-watch.js';
import { readLocalSockets } from './source/local-sockets.js';
import { CapacityResolver, type NatRuleConfig } from './track/capacity.js';
import { StatsBuilder, TOP_N } from './track/stats.js';
import { topKeys } from './track/top.js';
import { natAddressesCached, type NatAddressEntry } from './track/nat-addresses.js';
import { NflogCounts, type NflogCount } from './track/nflog-counts.js';
import { Tracker } from './track/tracker.js';
import { MessageQueue, type StreamMessage } from './message-queue.js';
import type { Alert, Readiness, StatsMessage, StreamerEvents, StreamerLike, TopEntry } from './types.js';

export type { StreamMessage };

export interface StreamerOptions {
  /** Namespace name (/var/run/netns/NAME) or path; null/undefined: the current namespace. */
  netns?: string | null;
  /** NAT port range override for every NAT key (`--nat-ports A-B`). */
  natPorts?: [number, number];
  /** Per-rule capacity overrides (config file). */
  natRules?: NatRuleConfig[];
  /** NFLOG groups to bind; default: the groups the ruleset's log statements name. */
  nflogGroups?: number[];
  thresholds?: Partial<Thresholds>;
  statsIntervalMs?: number;
  /** Inject a source (tests, replay); default: the native netlink source. */
  source?: EventSource;
  clock?: Clock;
  /** The namespace's addresses; default: read over rtnetlink and kept current by notifications. */
  localAddrs?: string[];
  /** Read the ruleset for capacities (default true unless a source is injected). */
  detectRuleset?: boolean;
  /** Re-read period when change notifications cannot be subscribed (and for iptables-legacy). */
  rulesetIntervalMs?: number;
  addrsIntervalMs?: number;
  /** Local socket counts (sock_diag) period; default 1 s. */
  socketsIntervalMs?: number;
  rcvbufBytes?: number;
  /** Keys with per-second rings (LRU beyond). */
  ringKeys?: number;
  /** Replay ring of recent alerts. */
  alertRing?: number;
}

export class Streamer extends EventEmitter implements StreamerLike {
  readonly netns: string | null;
  readonly startedAt: string;
  readonly tracker: Tracker;
  readonly thresholds: Thresholds;
  private readonly clock: Clock;
  private readonly rules: AlertRules;
  private readonly statsBuilder: StatsBuilder;
  private readonly ruleset: RulesetWatcher;
  private source: EventSource | null = null;
  private timers: unknown[] = [];
  private watch: KernelWatch | null = null;
  private saidUnreadable = '';
  private last: StatsMessage | null = null;
  private ticking = false;
  private dumpSince = 0;
  private lastRefreshMs = 0;
  private lastError = { message: '', ms: 0 };
  private closed = false;
  /** Readiness inputs: the first dump ended, the counters were read, the last read failed. */
  private firstDumpEnded = false;
  private countersRead = false;
  private countersFailing = false;
  private readonly queues = new Set<MessageQueue>();
  private readonly received = { conntrack: 0, nflog: 0 };
  private readonly nflogCounts = new NflogCounts();
  /** Loss components since start; totals() turns them into events (lostEvents). */
  private readonly lost = { conntrack: zeroLoss(), nflog: zeroLoss() };

  constructor(private readonly opts: StreamerOptions = {}) {
    super();
    this.netns = netnsPath(opts.netns);
    this.clock = opts.clock ?? systemClock;
    this.startedAt = new Date(this.clock.now()).toISOString();
    this.thresholds = makeThresholds(opts.thresholds);
    const capacity = new CapacityResolver({ natPorts: opts.natPorts, natRules: opts.natRules });
    this.tracker = new Tracker({ capacity, ringKeys: opts.ringKeys, localAddrs: opts.localAddrs });
    this.rules = new AlertRules(this.tracker, this.clock, this.thresholds, (a) => this.publish('alert', a), opts.alertRing);
    this.statsBuilder = new StatsBuilder(this.tracker);
    this.ruleset = new RulesetWatcher(this.netns);
  }

  /**
   * Applies new operator settings live (SIGHUP): thresholds in place (the rules share the
   * object), NAT overrides through the capacity resolver so every key is re-resolved.
   * A field left undefined keeps its value; null clears it.
   */
  reconfigure(opts: { thresholds?: Partial<Thresholds> | null; natPorts?: [number, number] | null; natRules?: NatRuleConfig[] | null }): void {
    if (opts.thresholds !== undefined) Object.assign(this.thresholds, makeThresholds(opts.thresholds ?? undefined));
    if (opts.natPorts !== undefined || opts.natRules !== undefined) this.tracker.capacity.setOverrides(opts);
  }

  get seq(): number {
    return this.rules.engine.seq;
  }

  /** Reads the namespace's configuration, subscribes, and starts the 1 s evaluation. */
  async start(): Promise<void> {
    if (this.source) throw new NatwatchError('ERUNTIME', 'streamer already started');
    if (this.netns !== null && !existsSync(this.netns)) throw new NatwatchError('ENETNS', `network namespace ${this.netns} does not exist`);
    const detect = this.opts.detectRuleset ?? this.opts.source === undefined;
    if (detect) await this.refreshRuleset(); // addresses come with it
    const source = this.opts.source ?? (await this.nativeSource());
    this.source = source;
    await source.start({
      conntrack: (v) => this.guard(() => this.onConntrack(v)),
      nflog: (v) => this.guard(() => this.onNflog(v)),
      loss: (r) => this.guard(() => this.onLoss(r)),
      dumpBegin: () => this.guard(() => {
        this.dumpSince = this.clock.now();
        this.tracker.dumpBegin();
      }),
      dumpEnd: () => this.guard(() => this.onDumpEnd()),
      error: (err) => this.fail(err),
    });
    await this.tick();
    const every = (ms: number, fn: () => Promise<void>) => this.timers.push(this.clock.setInterval(() => void fn(), ms));
    every(this.opts.statsIntervalMs ?? 1000, () => this.tick());
    if (detect) {
      this.watchChanges(every);
      every(this.opts.socketsIntervalMs ?? 1000, () => this.refreshSockets());
    }
  }

  /**
   * Local sockets from sock_diag, where conntrack does not see local flows: a namespace with no
   * nat chain and no rule using conntrack has no conntrack hooks. Elsewhere conntrack counts
   * them and the dump (≈ 9 ms CPU a second, the kernel walks its whole socket hash) is skipped.
   */
  private async refreshSockets(): Promise<void> {
    const r = this.ruleset.current;
    const tracked = r.unreadable.length === 0 && (r.natChains > 0 || r.ctRules.length > 0);
    try {
      const counts = tracked ? new Map<string, number>() : await readLocalSockets(this.netns);
      if (!this.closed) this.tracker.setLocalSockets(counts, this.nowSec());
    } catch (err) {
      if (!this.closed) this.fail(new NatwatchError('ERUNTIME', `reading local sockets: ${(err as Error).message}`, { cause: err }));
    }
  }

  /**
   * Re-reads the ruleset and addresses when the kernel says they changed. Legacy iptables
   * tables send no notification: a slow re-read every rulesetIntervalMs (60 s; one read of a
   * 100-rule ruleset costs about a millisecond, BENCHMARKS.md) covers them. Without
   * notifications (the subscription failed) both are polled faster.
   */
  private watchChanges(every: (ms: number, fn: () => Promise<void>) => void): void {
    try {
      this.watch = watchKernelChanges(this.netns, { ruleset: true, addresses: true }, (kind) => {
        void (kind === 'ruleset' ? this.refreshRuleset() : this.refreshAddrs());
      });
      every(this.opts.rulesetIntervalMs ?? 60_000, () => this.refreshRuleset());
    } catch (err) {
      this.fail(new NatwatchError('ERUNTIME', `no change notifications, polling instead: ${(err as Error).message}`, { cause: err }));
      every(this.opts.rulesetIntervalMs ?? 10_000, () => this.refreshRuleset());
      if (!this.opts.localAddrs) every(this.opts.addrsIntervalMs ?? 30_000, () => this.refreshAddrs());
    }
  }

  private async nativeSource(): Promise<EventSource> {
    const groups = this.opts.nflogGroups ?? this.ruleset.current.groups;
    // A variable specifier keeps the addon out of anything that never starts a native streamer.
    const spec = './source/netlink-source.js';
    const mod = (await import(spec)) as {
      createNetlinkSource(o: { netns: string | null; nflogGroups?: number[]; rcvbufBytes?: number; dump?: boolean }): EventSource;
    };
    return mod.createNetlinkSource({ netns: this.netns, nflogGroups: groups, rcvbufBytes: this.opts.rcvbufBytes, dump: true });
  }

  private nowSec(): number {
    return Math.floor(this.clock.now() / 1000);
  }

  private onConntrack(v: ConntrackView): void {
    const t = this.tracker.totals;
    const before = t.news + t.updates + t.destroys;
    this.tracker.onConntrack(v, this.nowSec());
    this.received.conntrack += t.news + t.updates + t.destroys - before;
    if (!this.wantsEvents()) return;
    for (let i = 0; i < v.count; i++) {
      v.seek(i);
      if (v.kind !== CtKind.Dump) this.publish('event', v.toEvent());
    }
  }

  private onNflog(v: NflogView): void {
    this.received.nflog += v.count;
    this.nflogCounts.onBatch(v);
    this.rules.nflog.onBatch(v);
    if (!this.wantsEvents()) return;
    for (let i = 0; i < v.count; i++) this.publish('event', v.seek(i).toEvent());
  }

  private onLoss(r: LossReport): void {
    addLoss(this.lost[r.source], r);
    this.rules.loss.onLoss(r);
    this.maybeResync();
  }

  private onDumpEnd(): void {
    this.firstDumpEnded = true;
    this.tracker.dumpEnd();
    this.rules.loss.onDumpEnd();
    this.maybeResync();
  }

  private maybeResync(): void {
    if (!this.source || this.closed) return;
    // A dump in progress began before the loss: wait for it to end, then dump again
    // (unless it has hung: a failed dump may never send its end).
    if (this.tracker.inDump && this.clock.now() - this.dumpSince < this.thresholds.resyncTimeoutMs) return;
    if (this.rules.loss.wantResync()) this.source.resync();
  }

  /** See Thresholds.refreshDumpMs. */
  private maybeRefreshDump(now: number, count: number): void {
    const t = this.thresholds;
    if (!this.source || t.refreshDumpMs <= 0 || this.rules.port.firingCount === 0 || this.tracker.inDump) return;
    if (count > t.refreshDumpMaxCount || now - this.lastRefreshMs < t.refreshDumpMs) return;
    this.lastRefreshMs = now;
    this.source.resync();
  }

  /**
   * One evaluation: read the kernel counters, run every rule, publish stats. Called every
   * statsIntervalMs; public so tests and benchmarks can drive it with a fake clock.
   */
  async tick(): Promise<void> {
    if (this.ticking || this.closed || !this.source) return;
    this.ticking = true;
    try {
      let snap: CounterSnapshot;
      try {
        snap = await this.source.readCounters();
        this.countersRead = true;
        this.countersFailing = false;
      } catch (err) {
        this.countersFailing = true;
        this.fail(err as Error);
        return;
      }
      if (this.closed) return;
      // tick() runs from a timer as `void tick()`: a throw here (a rule, a 'stats' or 'alert'
      // listener) would be an unhandled rejection and take the daemon down.
      this.guard(() => this.evaluate(snap));
    } finally {
      this.ticking = false;
    }
  }

  private evaluate(snap: CounterSnapshot): void {
    const now = this.clock.now();
    const delta = this.rules.evaluate(snap, now);
    this.maybeResync();
    this.maybeRefreshDump(now, snap.count);
    this.last = this.statsBuilder.build(snap, delta, now);
    this.publish('stats', this.last);
  }

  private async refreshRuleset(): Promise<void> {
    try {
      const { info, interfaces } = await this.ruleset.refresh();
      // Also when unchanged: a read that failed meanwhile marked capacities unknown (no-op otherwise).
      this.tracker.capacity.setRuleset(info);
      // What could not be read marks capacities unknown, and is said once (again only if it changes).
      const unreadable = info.unreadable.join('; ');
      if (unreadable !== this.saidUnreadable && !this.closed) {
        this.saidUnreadable = unreadable;
        if (unreadable) this.fail(new NatwatchError('EPERM', `part of the ruleset is unreadable, capacities it could explain are unknown: ${unreadable}`));
      }
      this.applyInterfaces(interfaces);
    } catch (err) {
      // Capacities become unknown: say why (fail() repeats a recurring cause once a minute).
      // A read that was in flight when close() ran has nobody left to tell.
      this.tracker.capacity.setUnreadable([`ruleset unreadable: ${(err as Error).message}`]);
      if (!this.closed) this.fail(new NatwatchError('ERUNTIME', `reading the ruleset: ${(err as Error).message}`, { cause: err }));
    }
  }

  private applyInterfaces(ifs: Map<string, string[]>): void {
    if (!this.opts.localAddrs) this.tracker.setLocalAddrs([...ifs.values()].flat());
    this.tracker.capacity.setInterfaces(ifs);
  }

  private async refreshAddrs(): Promise<void> {
    try {
      this.applyInterfaces(await readInterfaces(this.netns));
    } catch (err) {
      if (!this.closed) this.fail(new NatwatchError('ERUNTIME', `reading interface addresses: ${(err as Error).message}`, { cause: err }));
    }
  }

  private wantsEvents(): boolean {
    if (this.listenerCount('event') > 0) return true;
    for (const q of this.queues) if (q.wants('event')) return true;
    return false;
  }

  private publish<K extends 'alert' | 'stats' | 'event'>(name: K, msg: StreamerEvents[K][0]): void {
    for (const q of this.queues) q.push(msg as StreamMessage);
    this.emit(name, msg);
  }

  /** A handler must never throw into the source's batch loop. */
  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.fail(err as Error);
    }
  }

  private fail(err: Error): void {
    // The same failure every second (counters unreadable, ruleset unreadable) is said once a
    // minute, not 60 times.
    const now = this.clock.now();
    if (err.message === this.lastError.message && now - this.lastError.ms < 60_000) return;
    this.lastError = { message: err.message, ms: now };
    // 'error' without a listener would throw and take a daemon down: only emit when heard.
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  firing(): Alert[] {
    return this.rules.engine.firing();
  }

  alertsSince(since: number): Alert[] {
    return this.rules.engine.alertsSince(since);
  }

  top(): TopEntry[] {
    return this.last ? this.last.top : topKeys(this.tracker, TOP_N, this.nowSec());
  }

  lastStats(): StatsMessage | null {
    return this.last;
  }

  readiness(): Readiness {
    if (!this.firstDumpEnded || !this.countersRead) return 'starting';
    return this.countersFailing ? 'degraded' : 'ok';
  }

  totals(): { eventsReceived: { conntrack: number; nflog: number }; eventsLost: { conntrack: number; nflog: number }; nflogPackets: NflogCount[] } {
    return {
      eventsReceived: { ...this.received },
      eventsLost: { conntrack: lostEvents(this.lost.conntrack), nflog: lostEvents(this.lost.nflog) },
      nflogPackets: this.nflogCounts.list(),
    };
  }

  /**
   * Does the rule that logs to NFLOG (group, prefix) drop or reject? From the ruleset model
   * (ECS `event.type: denied`); null when no rule read names that group and prefix.
   */
  nflogDenies(group: number, prefix: string): boolean | null {
    return logDenies(this.ruleset.current, group, prefix);
  }

  natAddresses(): NatAddressEntry[] {
    return natAddressesCached(this.tracker, this.clock.now());
  }

  /**
   * Alerts, stats and (if asked for) events as an async iterator with a bounded buffer; what a
   * slow consumer lost to the bound is in the iterator's `dropped`.
   */
  messages(types: Array<StreamMessage['type']> = ['alert', 'stats'], bufferSize = 10_000): MessageQueue {
    const q = new MessageQueue(new Set(types), bufferSize, () => this.queues.delete(q));
    if (this.closed) q.end();
    else this.queues.add(q);
    return q;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<StreamMessage> {
    return this.messages();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) this.clock.clearInterval(t);
    this.timers = [];
    this.watch?.close();
    this.watch = null;
    for (const q of this.queues) q.end();
    this.queues.clear();
    const s = this.source;
    this.source = null;
    if (s) await s.close();
  }
}

export function createStreamer(opts: StreamerOptions = {}): Streamer {
  return new Streamer(opts);
}
