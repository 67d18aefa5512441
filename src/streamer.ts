// The running pipeline, for one network namespace or many: one NamespacePipeline per namespace
// (source → tracker → rules, src/namespace-pipeline.ts), all polled by one timer, their alerts
// through one engine (one seq, one replay ring), their stats merged into one message. What the
// server, `tail` and embedders consume: 'alert' / 'stats' / 'event' as an EventEmitter and an
// async iterator. With `all` the set of namespaces follows /var/run/netns while running.
import { EventEmitter } from 'node:events';
import { systemClock, type Clock } from './alert/clock.js';
import { AlertEngine } from './alert/engine.js';
import { AlertScope } from './alert/scope.js';
import { thresholds as makeThresholds, type Thresholds } from './alert/thresholds.js';
import { NatwatchError, UsageError } from './errors.js';
import { MessageQueue, type StreamMessage } from './message-queue.js';
import { NamespacePipeline, type PipelineOptions, type Totals } from './namespace-pipeline.js';
import { ALL_NETNS, NamespaceFollower, type NetnsTarget } from './netns-follow.js';
import { netnsName, netnsPath, type NetnsEntry } from './netns.js';
import type { EventSource } from './source/types.js';
import type { NatRuleConfig } from './track/capacity.js';
import type { NatAddressEntry } from './track/nat-addresses.js';
import { combineStats, mergeTop } from './track/stats.js';
import type { Tracker } from './track/tracker.js';
import type { Alert, NflogGroupStatus, Readiness, StatsMessage, StreamerEvents, StreamerLike, TopEntry, WireEvent } from './types.js';

export type { StreamMessage };

export interface StreamerOptions {
  /**
   * The namespace to watch: a name (/var/run/netns/NAME) or a path; null/undefined for
   * natwatch's own; 'all' for natwatch's own plus every namespace under /var/run/netns, followed
   * while running. An array watches several (in one process, one alert seq).
   */
  netns?: string | null | ReadonlyArray<string | null>;
  /** With 'all': globs over the names under /var/run/netns to leave out. */
  netnsExclude?: readonly string[];
  /** NAT port range override for every NAT key (`--nat-ports A-B`). */
  natPorts?: [number, number];
  /** Per-rule capacity overrides (config file). */
  natRules?: NatRuleConfig[];
  /**
   * NFLOG groups to bind in each namespace (each must bind, else its start fails); default: the
   * groups its ruleset's log statements name, best effort (one another program holds is retried).
   */
  nflogGroups?: number[];
  /** Retry interval for a ruleset-chosen NFLOG group another program holds; default 30 s. */
  nflogRetryMs?: number;
  thresholds?: Partial<Thresholds>;
  /**
   * How often the kernel counters are read and the rules run, ms (default 200): a drop becomes
   * an alert within this. Each read is one small netlink dump per namespace.
   */
  pollIntervalMs?: number;
  /** How often stats are published, ms (default 1000). */
  statsIntervalMs?: number;
  /** Inject a source (tests, replay) for the one namespace watched; default: the native netlink source. */
  source?: EventSource;
  /** Inject a source per namespace (tests). */
  sourceFor?: (ns: { name: string | null; path: string | null }) => EventSource;
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
  /** Keys with per-second rings, per namespace (LRU beyond). */
  ringKeys?: number;
  /** Replay ring of recent alerts. */
  alertRing?: number;
  /** With 'all': how often /var/run/netns is read again, ms (default 1000). */
  netnsScanMs?: number;
  /** For tests: lists the mounted namespaces instead of reading /var/run/netns. */
  netnsList?: () => NetnsEntry[];
}

/** A namespace found by `all` that failed to start is tried again after this long. */
const RETRY_MS = 5_000;

export class Streamer extends EventEmitter implements StreamerLike {
  readonly netns: string | null;
  readonly startedAt: string;
  readonly thresholds: Thresholds;
  private readonly clock: Clock;
  private readonly engine: AlertEngine;
  private readonly follower: NamespaceFollower;
  /** Stats carry `namespaces` (several given, or `all`). */
  private readonly several: boolean;
  private readonly pipelineOpts: PipelineOptions;
  /** Running pipelines by NetnsTarget key, in the order they started. */
  private readonly pipelines = new Map<string, NamespacePipeline>();
  private readonly starting = new Map<string, NamespacePipeline>();
  /** Found namespaces whose start failed: not tried again before this time. */
  private readonly retryAt = new Map<string, number>();
  /** Totals of pipelines closed while running (metrics counters never go back). */
  private readonly retired: Omit<Totals, 'nflogPackets'> = { eventsReceived: { conntrack: 0, nflog: 0 }, eventsLost: { conntrack: 0, nflog: 0 } };
  private timers: unknown[] = [];
  private last: StatsMessage | null = null;
  private started = false;
  private closed = false;
  private pollLoop: Promise<void> | null = null;
  private again = false;
  private statsDue = false;
  private lastError = { message: '', ms: 0 };
  /** Every namespace watched at the start has been ready once (see readiness()). */
  private readyOnce = false;
  private readonly queues = new Set<MessageQueue>();
  /** retainEvents() holders, and 'event' listeners (counted as they come and go). */
  private eventRetains = 0;
  private eventListeners = 0;
  /** What the sources were last told (setUpdates): conntrack UPDATE events wanted. */
  private updatesOn = false;

  constructor(private readonly opts: StreamerOptions = {}) {
    super();
    // An embedder's on('event', fn) wants every event: it holds the UPDATE group like
    // retainEvents() does, until off().
    this.on('newListener', (name: string | symbol) => {
      if (name === 'event') this.countEventListener(+1);
    });
    this.on('removeListener', (name: string | symbol) => {
      if (name === 'event') this.countEventListener(-1);
    });
    const given = opts.netns === undefined || opts.netns === null ? [null] : typeof opts.netns === 'string' ? [opts.netns] : [...opts.netns];
    const values = given.length > 0 ? given.map((v) => (v === '' ? null : v)) : [null];
    this.several = values.length > 1 || values.includes(ALL_NETNS);
    // One namespace: its name (NAME for /var/run/netns/NAME, else the path); several: the values.
    const single = values[0] ?? null;
    this.netns = this.several ? values.map((v) => v ?? '(own)').join(',') : single === null ? null : netnsName(netnsPath(single)!);
    if (opts.netnsExclude?.length && !values.includes(ALL_NETNS)) throw new UsageError(`--netns-exclude: only with --netns ${ALL_NETNS}`);
    this.clock = opts.clock ?? systemClock;
    this.startedAt = new Date(this.clock.now()).toISOString();
    this.thresholds = makeThresholds(opts.thresholds);
    this.engine = new AlertEngine(this.clock, (a) => this.publish('alert', a), this.thresholds, opts.alertRing);
    this.follower = new NamespaceFollower(
      { netns: values, exclude: opts.netnsExclude ?? [] },
      { clock: this.clock, intervalMs: opts.netnsScanMs, ...(opts.netnsList ? { list: opts.netnsList } : {}) },
    );
    this.pipelineOpts = {
      natPorts: opts.natPorts,
      natRules: opts.natRules,
      nflogGroups: opts.nflogGroups,
      nflogRetryMs: opts.nflogRetryMs,
      localAddrs: opts.localAddrs,
      detectRuleset: opts.detectRuleset,
      rulesetIntervalMs: opts.rulesetIntervalMs,
      addrsIntervalMs: opts.addrsIntervalMs,
      socketsIntervalMs: opts.socketsIntervalMs,
      rcvbufBytes: opts.rcvbufBytes,
      ringKeys: opts.ringKeys,
    };
  }

  /**
   * Applies new operator settings live (SIGHUP): thresholds in place (every rule shares the
   * object), NAT overrides through each namespace's capacity resolver so every key is
   * re-resolved. A field left undefined keeps its value; null clears it.
   */
  reconfigure(opts: { thresholds?: Partial<Thresholds> | null; natPorts?: [number, number] | null; natRules?: NatRuleConfig[] | null }): void {
    if (opts.thresholds !== undefined) Object.assign(this.thresholds, makeThresholds(opts.thresholds ?? undefined));
    if (opts.natPorts !== undefined) this.pipelineOpts.natPorts = opts.natPorts ?? undefined;
    if (opts.natRules !== undefined) this.pipelineOpts.natRules = opts.natRules ?? undefined;
    if (opts.natPorts !== undefined || opts.natRules !== undefined) {
      for (const p of this.pipelines.values()) p.setOverrides(opts);
    }
  }

  /**
   * Re-reads every namespace's ruleset now, as a kernel notification would. iptables-legacy
   * tables announce no change (they are re-read every minute), so SIGHUP calls this too.
   */
  async refreshRuleset(): Promise<void> {
    await Promise.all([...this.pipelines.values()].map((p) => p.refreshRuleset()));
  }

  get seq(): number {
    return this.engine.seq;
  }

  /**
   * Holds conntrack UPDATE events on, in every namespace, until the returned function is called
   * (idempotent). Tracking needs only NEW and DESTROY, so without any holder (a stream client
   * with types=event, `natwatch events`, an 'event' listener or an events iterator) the sources
   * leave the UPDATE group and the kernel stops building two thirds of the events.
   */
  retainEvents(): () => void {
    this.eventRetains++;
    this.syncUpdates();
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.eventRetains--;
      this.syncUpdates();
    };
  }

  private countEventListener(delta: number): void {
    this.eventListeners += delta;
    this.syncUpdates();
  }

  private syncUpdates(): void {
    const on = !this.closed && this.wantsEvents();
    if (on === this.updatesOn) return;
    this.updatesOn = on;
    for (const p of this.pipelines.values()) p.setUpdates(on);
  }

  /** The NFLOG groups of every namespace and whether they are bound (each with its netns when several are watched). */
  nflogGroups(): NflogGroupStatus[] {
    return [...this.pipelines.values()].flatMap((p) => (this.several ? p.nflogGroups().map((g) => ({ ...g, netns: p.name })) : p.nflogGroups()));
  }

  /** The namespaces watched now, by name (null: natwatch's own). */
  namespaces(): Array<string | null> {
    return [...this.pipelines.values()].map((p) => p.name);
  }

  /** The tracker of the first namespace watched (tests, benchmarks). */
  get tracker(): Tracker {
    const p = this.pipelines.values().next().value as NamespacePipeline | undefined;
    if (!p) throw new NatwatchError('ERUNTIME', 'no namespace is watched');
    return p.tracker;
  }

  /**
   * Opens every namespace, subscribes, and starts polling. A namespace given by name or path
   * that fails fails the start; one found by `all` is reported and tried again later.
   */
  async start(): Promise<void> {
    if (this.started || this.closed) throw new NatwatchError('ERUNTIME', 'streamer already started');
    this.started = true;
    const targets = this.follower.targets();
    if (this.opts.source && targets.length !== 1) throw new UsageError('an injected source watches exactly one namespace');
    const results = await Promise.allSettled(targets.map((t) => this.open(t)));
    const failures = results.flatMap((r, i) => (r.status === 'rejected' ? [{ t: targets[i]!, err: r.reason as Error }] : []));
    const fatal = failures.find((f) => !f.t.found) ?? (this.pipelines.size === 0 ? failures[0] : undefined);
    if (fatal) {
      await this.close();
      throw fatal.err;
    }
    for (const f of failures) this.retryLater(f.t, f.err);
    await this.tick();
    const every = (ms: number, fn: () => void) => this.timers.push(this.clock.setInterval(fn, ms));
    every(this.opts.pollIntervalMs ?? 200, () => void this.requestPoll(false));
    every(this.opts.statsIntervalMs ?? 1000, () => void this.requestPoll(true));
    this.follower.start(() => this.sync());
  }

  /** Starts a pipeline for the target; it runs only if the target is still wanted by then. */
  private async open(t: NetnsTarget): Promise<void> {
    const host = {
      clock: this.clock,
      thresholds: this.thresholds,
      wantsEvents: () => this.wantsEvents(),
      event: (e: WireEvent) => this.publish('event', e),
      fail: (err: Error) => this.fail(this.about(t.name, err)),
      warn: (message: string) => {
        const text = this.several && t.name !== null ? `netns ${t.name}: ${message}` : message;
        if (this.listenerCount('warning') > 0) this.emit('warning', text);
        else this.fail(new NatwatchError('ERUNTIME', text));
      },
    };
    const injected = this.opts.source ?? this.opts.sourceFor?.({ name: t.name, path: t.path });
    const p = new NamespacePipeline(t.name, t.path, host, new AlertScope(this.engine, t.name), this.pipelineOpts, injected);
    this.starting.set(t.key, p);
    try {
      await p.start();
    } catch (err) {
      await p.close();
      throw this.about(t.name, err as Error);
    } finally {
      this.starting.delete(t.key);
    }
    // A namespace found by `all` may have gone while it started (it took a ruleset read).
    if (this.closed || (t.found && !this.follower.targets().some((x) => x.key === t.key))) {
      await p.close(this.goneText(t.name));
      return;
    }
    this.pipelines.set(t.key, p);
    p.setUpdates(this.updatesOn); // a consumer may have come or gone while it started
    this.emit('namespace', { netns: t.name, state: 'watching' });
  }

  private retryLater(t: NetnsTarget, err: Error): void {
    this.retryAt.set(t.key, this.clock.now() + RETRY_MS);
    this.fail(err);
  }

  /** `all`: compares what /var/run/netns holds now with what runs, and opens and closes to match. */
  private sync(): void {
    if (this.closed) return;
    const want = new Map(this.follower.targets().map((t) => [t.key, t]));
    for (const [key, p] of this.pipelines) if (!want.has(key)) void this.drop(key, p);
    const now = this.clock.now();
    for (const [key, t] of want) {
      if (this.pipelines.has(key) || this.starting.has(key) || (this.retryAt.get(key) ?? 0) > now) continue;
      this.retryAt.delete(key);
      this.open(t).catch((err: Error) => this.retryLater(t, err));
    }
    for (const key of this.retryAt.keys()) if (!want.has(key)) this.retryAt.delete(key);
  }

  /** A namespace went away: its keys go with its pipeline, its alerts resolve, stats forget it. */
  private async drop(key: string, p: NamespacePipeline): Promise<void> {
    this.pipelines.delete(key);
    const t = p.totals();
    for (const s of ['conntrack', 'nflog'] as const) {
      this.retired.eventsReceived[s] += t.eventsReceived[s];
      this.retired.eventsLost[s] += t.eventsLost[s];
    }
    if (this.last) {
      const keep = (e: { netns?: string | null }) => e.netns !== p.name;
      this.last = { ...this.last, top: this.last.top.filter(keep), ...(this.last.namespaces ? { namespaces: this.last.namespaces.filter(keep) } : {}) };
    }
    try {
      await p.close(this.goneText(p.name));
    } catch (err) {
      this.fail(this.about(p.name, err as Error));
    }
    this.emit('namespace', { netns: p.name, state: 'gone' });
  }

  private goneText(name: string | null): string {
    return `Network namespace ${name === null ? "natwatch's own" : `'${name}'`} is no longer watched (deleted or excluded): its connections are no longer tracked and its alerts are resolved`;
  }

  /** An error about one namespace names it when several are watched. */
  private about(name: string | null, err: Error): Error {
    if (!this.several || name === null || err.message.includes(name)) return err;
    const e = err instanceof NatwatchError ? new NatwatchError(err.code, `netns ${name}: ${err.message}`, { cause: err }) : new Error(`netns ${name}: ${err.message}`, { cause: err });
    return e;
  }

  /**
   * Reads the counters of every namespace and runs the rules: every pollIntervalMs from a
   * timer; `stats` also publishes stats. Requests made while a poll runs are merged into one more.
   */
  private requestPoll(stats: boolean): Promise<void> {
    if (stats) this.statsDue = true;
    if (this.pollLoop) {
      this.again = true;
      return this.pollLoop;
    }
    this.pollLoop = this.runPolls();
    return this.pollLoop;
  }

  private async runPolls(): Promise<void> {
    try {
      do {
        this.again = false;
        const stats = this.statsDue;
        this.statsDue = false;
        await this.pollOnce(stats);
      } while (this.again && !this.closed);
    } finally {
      // Cleared in the same synchronous step that saw `again` false: no request is lost.
      this.pollLoop = null;
    }
  }

  private async pollOnce(stats: boolean): Promise<void> {
    const parts: Array<{ netns: string | null; stats: StatsMessage }> = [];
    for (const p of [...this.pipelines.values()]) {
      const s = await p.poll(stats);
      if (s) parts.push({ netns: p.name, stats: s });
    }
    if (!stats || this.closed || parts.length === 0) return;
    if (this.several) {
      this.last = combineStats(parts, this.clock.now());
      const nflog = this.nflogGroups();
      if (nflog.length > 0) this.last.nflog = nflog;
    } else this.last = parts[0]!.stats;
    const msg = this.last;
    // A 'stats' listener that throws must not reject the timer's promise.
    try {
      this.publish('stats', msg);
    } catch (err) {
      this.fail(err as Error);
    }
  }

  /**
   * One full evaluation now: read the kernel counters, run every rule, publish stats. Public so
   * tests and benchmarks can drive it with a fake clock.
   */
  async tick(): Promise<void> {
    if (this.closed || !this.started) return;
    await this.requestPoll(true);
  }

  private wantsEvents(): boolean {
    if (this.eventRetains > 0 || this.eventListeners > 0) return true;
    for (const q of this.queues) if (q.wants('event')) return true;
    return false;
  }

  private publish<K extends 'alert' | 'stats' | 'event'>(name: K, msg: StreamerEvents[K][0]): void {
    for (const q of this.queues) q.push(msg as StreamMessage);
    this.emit(name, msg);
  }

  private fail(err: Error): void {
    // The same failure every poll (counters unreadable, ruleset unreadable) is said once a
    // minute, not 300 times.
    const now = this.clock.now();
    if (err.message === this.lastError.message && now - this.lastError.ms < 60_000) return;
    this.lastError = { message: err.message, ms: now };
    // 'error' without a listener would throw and take a daemon down: only emit when heard.
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  /**
   * Does the rule that logs to NFLOG (group, prefix) drop or reject? From the ruleset model
   * (ECS `event.type: denied`); null when no rule read names that group and prefix. With
   * `netns`, that namespace's ruleset; without, the first namespace whose ruleset says.
   */
  nflogDenies(group: number, prefix: string, netns?: string | null): boolean | null {
    for (const p of this.pipelines.values()) {
      if (netns !== undefined && p.name !== netns) continue;
      const v = p.nflogDenies(group, prefix);
      if (v !== null) return v;
    }
    return null;
  }

  /** Per (proto, NAT address) of every namespace: the busiest destination's utilization (for /metrics). */
  natAddresses(): NatAddressEntry[] {
    return [...this.pipelines.values()].flatMap((p) => p.natAddresses());
  }

  firing(): Alert[] {
    return this.engine.firing();
  }

  alertsSince(since: number): Alert[] {
    return this.engine.alertsSince(since);
  }

  /** The busiest keys of every namespace now (stats.top is the same list as of its second). */
  top(): TopEntry[] {
    return mergeTop([...this.pipelines.values()].map((p) => p.top()));
  }

  lastStats(): StatsMessage | null {
    return this.last;
  }

  /**
   * For /healthz: 'starting' until every namespace watched at the start had its first table dump
   * and counter read (a namespace `all` finds later does not make the process 'starting' again),
   * then 'degraded' while any namespace's counters cannot be read, else 'ok'.
   */
  readiness(): Readiness {
    const ps = [...this.pipelines.values()];
    if (!this.readyOnce) {
      if (ps.length === 0 || ps.some((p) => p.readiness() === 'starting')) return 'starting';
      this.readyOnce = true;
    }
    return ps.some((p) => p.readiness() === 'degraded') ? 'degraded' : 'ok';
  }

  totals(): Totals {
    const out: Totals = { eventsReceived: { ...this.retired.eventsReceived }, eventsLost: { ...this.retired.eventsLost }, nflogPackets: [] };
    for (const p of this.pipelines.values()) {
      const t = p.totals();
      for (const s of ['conntrack', 'nflog'] as const) {
        out.eventsReceived[s] += t.eventsReceived[s];
        out.eventsLost[s] += t.eventsLost[s];
      }
      out.nflogPackets.push(...t.nflogPackets);
    }
    return out;
  }

  /**
   * Alerts, stats and (if asked for) events as an async iterator with a bounded buffer; what a
   * slow consumer lost to the bound is in the iterator's `dropped`.
   */
  messages(types: Array<StreamMessage['type']> = ['alert', 'stats'], bufferSize = 10_000): MessageQueue {
    const q = new MessageQueue(new Set(types), bufferSize, () => {
      this.queues.delete(q);
      this.syncUpdates();
    });
    if (this.closed) q.end();
    else this.queues.add(q);
    this.syncUpdates();
    return q;
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<StreamMessage> {
    return this.messages();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.follower.stop();
    for (const t of this.timers) this.clock.clearInterval(t);
    this.timers = [];
    for (const q of this.queues) q.end();
    this.queues.clear();
    const all = [...this.pipelines.values()];
    this.pipelines.clear();
    // Pipelines still starting close themselves when their start returns (they see `closed`).
    const results = await Promise.allSettled(all.map((p) => p.close()));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }
}

export function createStreamer(opts: StreamerOptions = {}): Streamer {
  return new Streamer(opts);
}
