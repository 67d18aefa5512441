// The running pipeline, for one network namespace or many: the namespaces watched
// (src/namespace-set.ts, one NamespacePipeline each: source → tracker → rules), all polled by one
// timer, their alerts through one engine (one seq, one replay ring), their stats merged into one
// message. What the server, `tail` and embedders consume: 'alert' / 'stats' / 'event' as an
// EventEmitter and an async iterator.
import { EventEmitter } from 'node:events';
import { systemClock, type Clock } from './alert/clock.js';
import { AlertEngine } from './alert/engine.js';
import { thresholds as makeThresholds, type Thresholds } from './alert/thresholds.js';
import { NatwatchError } from './errors.js';
import { MessageQueue, type StreamMessage } from './message-queue.js';
import type { Totals } from './namespace-pipeline.js';
import { NamespaceSet } from './namespace-set.js';
import { NamespaceFollower, netnsSpec } from './netns-follow.js';
import type { StreamerOptions } from './streamer-options.js';
import type { NatRuleConfig } from './track/capacity.js';
import type { NatAddressEntry } from './track/nat-addresses.js';
import type { Tracker } from './track/tracker.js';
import type { Alert, NflogGroupStatus, Readiness, StatsMessage, StreamerEvents, StreamerLike, TopEntry } from './types.js';

export type { StreamMessage, StreamerOptions };

export class Streamer extends EventEmitter implements StreamerLike {
  readonly netns: string | null;
  readonly startedAt: string;
  readonly thresholds: Thresholds;
  private readonly clock: Clock;
  private readonly engine: AlertEngine;
  /** Which namespaces `netns` means, kept current under `all`. */
  private readonly follower: NamespaceFollower;
  /** A pipeline per namespace the follower names. */
  private readonly set: NamespaceSet;
  private timers: unknown[] = [];
  private last: StatsMessage | null = null;
  private started = false;
  private closed = false;
  private pollLoop: Promise<void> | null = null;
  private again = false;
  private statsDue = false;
  /** When the last poll that publishes stats started. */
  private statsAtMs = 0;
  private lastError = { message: '', ms: 0 };
  private readonly queues = new Set<MessageQueue>();
  /** retainEvents() holders, and 'event' listeners (counted as they come and go). */
  private eventRetains = 0;
  private eventListeners = 0;

  constructor(private readonly opts: StreamerOptions = {}) {
    super();
    this.clock = opts.clock ?? systemClock;
    this.startedAt = new Date(this.clock.now()).toISOString();
    this.thresholds = makeThresholds(opts.thresholds);
    this.engine = new AlertEngine(this.clock, (a) => this.publish('alert', a), this.thresholds, opts.alertRing);
    this.follower = new NamespaceFollower(netnsSpec(opts.netns, opts.netnsExclude), {
      clock: this.clock,
      intervalMs: opts.netnsScanMs,
      ...(opts.netnsList ? { list: opts.netnsList } : {}),
    });
    this.netns = this.follower.label;
    this.set = new NamespaceSet(this.follower, this.engine, opts, {
      clock: this.clock,
      thresholds: this.thresholds,
      wantsEvents: () => this.wantsEvents(),
      event: (e) => this.publish('event', e),
      fail: (err) => this.fail(err),
      warn: (text) => {
        if (this.listenerCount('warning') > 0) this.emit('warning', text);
        else this.fail(new NatwatchError('ERUNTIME', text));
      },
      leaving: (name) => {
        if (!this.last) return;
        const keep = (e: { netns?: string | null }) => e.netns !== name;
        this.last = { ...this.last, top: this.last.top.filter(keep), ...(this.last.namespaces ? { namespaces: this.last.namespaces.filter(keep) } : {}) };
      },
      changed: (netns, state) => this.emit('namespace', { netns, state }),
    });
    // An embedder's on('event', fn) wants every event: it holds the UPDATE group like
    // retainEvents() does, until off().
    this.on('newListener', (name: string | symbol) => {
      if (name === 'event') this.countEventListener(+1);
    });
    this.on('removeListener', (name: string | symbol) => {
      if (name === 'event') this.countEventListener(-1);
    });
  }

  /**
   * Applies new operator settings live (SIGHUP): thresholds in place (every rule shares the
   * object), NAT overrides through each namespace's capacity resolver so every key is
   * re-resolved. A field left undefined keeps its value; null clears it.
   */
  reconfigure(opts: { thresholds?: Partial<Thresholds> | null; natPorts?: [number, number] | null; natRules?: NatRuleConfig[] | null }): void {
    if (opts.thresholds !== undefined) Object.assign(this.thresholds, makeThresholds(opts.thresholds ?? undefined));
    this.set.setOverrides(opts);
  }

  /**
   * Re-reads every namespace's ruleset now, as a kernel notification would. iptables-legacy
   * tables announce no change (they are re-read every minute), so SIGHUP calls this too.
   */
  async refreshRuleset(): Promise<void> {
    await this.set.refreshRuleset();
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
    this.set.setUpdates(!this.closed && this.wantsEvents());
  }

  /** The NFLOG groups of every namespace and whether they are bound (each with its netns when several are watched). */
  nflogGroups(): NflogGroupStatus[] {
    return this.set.nflogGroups();
  }

  /** The namespaces watched now, by name (null: natwatch's own). */
  namespaces(): Array<string | null> {
    return this.set.names();
  }

  /** The tracker of the first namespace watched (tests, benchmarks). */
  get tracker(): Tracker {
    const t = this.set.firstTracker();
    if (!t) throw new NatwatchError('ERUNTIME', 'no namespace is watched');
    return t;
  }

  /**
   * Opens every namespace, subscribes, and starts polling. A namespace given by name or path
   * that fails fails the start; one found by `all` is reported and tried again later.
   */
  async start(): Promise<void> {
    if (this.started || this.closed) throw new NatwatchError('ERUNTIME', 'streamer already started');
    this.started = true;
    try {
      await this.set.start();
    } catch (err) {
      await this.close();
      throw err;
    }
    await this.tick();
    // One timer: a stats poll is an ordinary poll that also publishes stats. Two timers met once
    // a second and ran two counter reads back to back.
    const pollMs = this.opts.pollIntervalMs ?? 200;
    const statsMs = this.opts.statsIntervalMs ?? 1000;
    const statsDue = () => this.clock.now() - this.statsAtMs >= statsMs - pollMs / 2;
    this.timers.push(this.clock.setInterval(() => void this.requestPoll(statsDue()), pollMs));
    this.set.follow();
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
        if (stats) this.statsAtMs = this.clock.now();
        await this.pollOnce(stats);
      } while (this.again && !this.closed);
    } finally {
      // Cleared in the same synchronous step that saw `again` false: no request is lost.
      this.pollLoop = null;
    }
  }

  private async pollOnce(stats: boolean): Promise<void> {
    const msg = await this.set.poll(stats);
    if (!msg || this.closed) return;
    this.last = msg;
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
    return this.set.nflogDenies(group, prefix, netns);
  }

  /** Per (proto, NAT address) of every namespace: the busiest destination's utilization (for /metrics). */
  natAddresses(): NatAddressEntry[] {
    return this.set.natAddresses();
  }

  firing(): Alert[] {
    return this.engine.firing();
  }

  alertsSince(since: number): Alert[] {
    return this.engine.alertsSince(since);
  }

  /** The busiest keys of every namespace now (stats.top is the same list as of its second). */
  top(): TopEntry[] {
    return this.set.top();
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
    return this.set.readiness();
  }

  totals(): Totals {
    return this.set.totals();
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
    for (const t of this.timers) this.clock.clearInterval(t);
    this.timers = [];
    for (const q of this.queues) q.end();
    this.queues.clear();
    await this.set.close();
  }
}

export function createStreamer(opts: StreamerOptions = {}): Streamer {
  return new Streamer(opts);
}
