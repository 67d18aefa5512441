// One namespace's pipeline: its EventSource feeding its tracker, its alert rules evaluated at
// every counter poll, its ruleset and addresses for capacities, and its per-second stats. The
// NamespaceSet (src/namespace-set.ts) runs one per watched namespace and merges what they produce.
import { addLoss, lostEvents, zeroLoss } from './alert/event-loss.js';
import type { Clock } from './alert/clock.js';
import { AlertRules } from './alert/rules.js';
import type { AlertScope } from './alert/scope.js';
import type { Thresholds } from './alert/thresholds.js';
import { NatwatchError } from './errors.js';
import { checkNetns } from './netns.js';
import { watchKernelChanges, type KernelWatch } from './source/kernel-watch.js';
import { readLocalSockets } from './source/local-sockets.js';
import { logDenies, readInterfaces, RulesetWatcher, type Ruleset } from './source/ruleset.js';
import { CtKind, type ConntrackView, type CounterSnapshot, type EventSource, type LossReport, type NflogView } from './source/types.js';
import { CapacityResolver, type NatRuleConfig } from './track/capacity.js';
import { StatsBuilder, TOP_N } from './track/stats.js';
import { topKeys } from './track/top.js';
import { natAddressesCached, type NatAddressEntry } from './track/nat-addresses.js';
import { NflogCounts, type NflogCount } from './track/nflog-counts.js';
import { Tracker } from './track/tracker.js';
import type { StreamerOptions } from './streamer-options.js';
import type { NamespaceTotals, NflogGroupStatus, Readiness, StatsMessage, TopEntry, WireEvent } from './types.js';

/** The streamer options every namespace's pipeline is built from (documented on StreamerOptions). */
const PIPELINE_KEYS = [
  'natPorts',
  'natRules',
  'nflogGroups',
  'nflogRetryMs',
  'localAddrs',
  'detectRuleset',
  'rulesetIntervalMs',
  'addrsIntervalMs',
  'socketsIntervalMs',
  'rcvbufBytes',
  'ringKeys',
] as const satisfies ReadonlyArray<keyof StreamerOptions>;

export type PipelineOptions = Pick<StreamerOptions, (typeof PIPELINE_KEYS)[number]>;

/** The pipeline's share of the streamer's options, copied: NAT overrides change it live (SIGHUP). */
export function pipelineOptions(opts: StreamerOptions): PipelineOptions {
  const out: PipelineOptions = {};
  for (const k of PIPELINE_KEYS) (out as Record<string, unknown>)[k] = opts[k];
  return out;
}

/** What a pipeline needs from the streamer that runs it. */
export interface PipelineHost {
  readonly clock: Clock;
  readonly thresholds: Thresholds;
  wantsEvents(): boolean;
  event(e: WireEvent): void;
  /** A failure that does not stop the pipeline (a batch, a poll, a ruleset read). */
  fail(err: Error): void;
  /** Worth a log line, not a failure (an NFLOG group another program holds; legacy tables not checked). */
  warn(message: string): void;
}

/**
 * Whether conntrack tracks the namespace's own flows: a nat chain or a rule using conntrack
 * registers its hooks for the whole family. A part of the ruleset that could not be read can
 * only add hooks, so what was read decides (an unprivileged serve cannot list iptables-legacy
 * tables, and must not pay a socket dump a second for it where nftables NAT already proves it).
 */
export function conntrackSeesLocal(r: Ruleset): boolean {
  return r.natChains > 0 || r.ctRules.length > 0;
}

export interface Totals {
  eventsReceived: { conntrack: number; nflog: number };
  eventsLost: { conntrack: number; nflog: number };
  /** Packets logged per NFLOG (group, trimmed prefix), bounded; each with its namespace. */
  nflogPackets: Array<NflogCount & { netns: string | null }>;
  /** Each watched namespace's own counts, when several are watched (NamespaceSet.totals). */
  namespaces?: NamespaceTotals[];
}

export class NamespacePipeline {
  readonly tracker: Tracker;
  private readonly rules: AlertRules;
  private readonly statsBuilder: StatsBuilder;
  private readonly ruleset: RulesetWatcher;
  private source: EventSource | null = null;
  private timers: unknown[] = [];
  private watch: KernelWatch | null = null;
  private saidUnreadable = '';
  /** Ruleset.unchecked lines already warned about. */
  private readonly saidUnchecked = new Set<string>();
  /** What the source was last told (setUpdates): conntrack UPDATE events wanted. */
  private updatesOn = false;
  /** Readiness inputs: the first dump ended, the counters were read, the last read failed. */
  private firstDumpEnded = false;
  private countersRead = false;
  private countersFailing = false;
  /** The kernel's drop counter delta since the last stats message (summed over polls). */
  private dropsSinceStats = 0;
  private dumpSince = 0;
  private lastRefreshMs = 0;
  private closed = false;
  private readonly received = { conntrack: 0, nflog: 0 };
  private readonly nflogCounts = new NflogCounts();
  /** Loss components since start; totals() turns them into events (lostEvents). */
  private readonly lost = { conntrack: zeroLoss(), nflog: zeroLoss() };

  constructor(
    /** For output: as given or found under /var/run/netns; null for natwatch's own. */
    readonly name: string | null,
    /** The nsfs path its sockets are opened in; null for natwatch's own. */
    readonly path: string | null,
    private readonly host: PipelineHost,
    readonly alerts: AlertScope,
    private readonly opts: PipelineOptions,
    /** An injected source (tests, replay); default: the native netlink source. */
    private readonly injected?: EventSource,
  ) {
    const capacity = new CapacityResolver({ natPorts: opts.natPorts, natRules: opts.natRules });
    this.tracker = new Tracker({ capacity, ringKeys: opts.ringKeys, localAddrs: opts.localAddrs });
    this.rules = new AlertRules(this.tracker, alerts, host.clock, host.thresholds);
    this.statsBuilder = new StatsBuilder(this.tracker, name);
    this.ruleset = new RulesetWatcher(path);
  }

  /** NAT overrides changed (SIGHUP): every key's capacity is resolved again. */
  setOverrides(o: { natPorts?: [number, number] | null; natRules?: NatRuleConfig[] | null }): void {
    this.tracker.capacity.setOverrides(o);
  }

  /** Reads the namespace's ruleset and addresses, subscribes, and takes a first counter reading. */
  async start(): Promise<void> {
    if (this.source || this.closed) throw new NatwatchError('ERUNTIME', 'namespace pipeline already started or closed');
    if (this.path !== null) checkNetns(this.path);
    const detect = this.opts.detectRuleset ?? this.injected === undefined;
    if (detect) await this.refreshRuleset(); // addresses come with it
    const source = this.injected ?? (await this.nativeSource());
    if (this.closed) {
      await source.close();
      return;
    }
    this.source = source;
    this.updatesOn = this.host.wantsEvents();
    source.setUpdates?.(this.updatesOn); // before start: subscribe with the right groups
    const guard = (fn: () => void) => this.guard(fn);
    await source.start({
      conntrack: (v) => guard(() => this.onConntrack(v)),
      nflog: (v) => guard(() => this.onNflog(v)),
      loss: (r) => guard(() => this.onLoss(r)),
      dumpBegin: () =>
        guard(() => {
          this.dumpSince = this.host.clock.now();
          this.tracker.dumpBegin();
        }),
      dumpEnd: () => guard(() => this.onDumpEnd()),
      error: (err) => this.host.fail(err),
      warn: (message) => this.host.warn(message),
    });
    const every = (ms: number, fn: () => Promise<void>) => this.timers.push(this.host.clock.setInterval(() => void fn(), ms));
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
    const tracked = conntrackSeesLocal(this.ruleset.current);
    try {
      const counts = tracked ? new Map<string, number>() : await readLocalSockets(this.path);
      if (!this.closed) this.tracker.setLocalSockets(counts, this.nowSec());
    } catch (err) {
      if (!this.closed) this.host.fail(new NatwatchError('ERUNTIME', `reading local sockets: ${(err as Error).message}`, { cause: err }));
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
      this.watch = watchKernelChanges(this.path, { ruleset: true, addresses: true }, (kind) => {
        void (kind === 'ruleset' ? this.refreshRuleset() : this.refreshAddrs());
      });
      every(this.opts.rulesetIntervalMs ?? 60_000, () => this.refreshRuleset());
    } catch (err) {
      this.host.fail(new NatwatchError('ERUNTIME', `no change notifications, polling instead: ${(err as Error).message}`, { cause: err }));
      every(this.opts.rulesetIntervalMs ?? 10_000, () => this.refreshRuleset());
      if (!this.opts.localAddrs) every(this.opts.addrsIntervalMs ?? 30_000, () => this.refreshAddrs());
    }
  }

  private async nativeSource(): Promise<EventSource> {
    const explicit = this.opts.nflogGroups;
    const groups = explicit ?? this.ruleset.current.groups;
    // A variable specifier keeps the addon out of anything that never starts a native streamer.
    const spec = './source/netlink-source.js';
    const mod = (await import(spec)) as typeof import('./source/netlink-source.js');
    return mod.createNetlinkSource({
      netns: this.path,
      nflogGroups: groups,
      nflogBestEffort: explicit === undefined,
      nflogRetryMs: this.opts.nflogRetryMs,
      rcvbufBytes: this.opts.rcvbufBytes,
      dump: true,
    });
  }

  /** Conntrack UPDATE events wanted (a consumer of `event` messages holds them on). */
  setUpdates(on: boolean): void {
    if (on === this.updatesOn) return;
    this.updatesOn = on;
    this.source?.setUpdates?.(on);
  }

  /** The NFLOG groups this namespace's source was to bind, and whether it holds them. */
  nflogGroups(): NflogGroupStatus[] {
    return this.source?.nflogGroups?.() ?? [];
  }

  private nowSec(): number {
    return Math.floor(this.host.clock.now() / 1000);
  }

  private onConntrack(v: ConntrackView): void {
    const t = this.tracker.totals;
    const before = t.news + t.updates + t.destroys;
    this.tracker.onConntrack(v, this.nowSec());
    this.received.conntrack += t.news + t.updates + t.destroys - before;
    if (!this.host.wantsEvents()) return;
    for (let i = 0; i < v.count; i++) {
      v.seek(i);
      if (v.kind === CtKind.Dump) continue;
      const e = v.toEvent();
      e.netns = this.name;
      this.host.event(e);
    }
  }

  private onNflog(v: NflogView): void {
    this.received.nflog += v.count;
    this.nflogCounts.onBatch(v);
    this.rules.nflog.onBatch(v);
    if (!this.host.wantsEvents()) return;
    for (let i = 0; i < v.count; i++) {
      const e = v.seek(i).toEvent();
      e.netns = this.name;
      this.host.event(e);
    }
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
    if (this.tracker.inDump && this.host.clock.now() - this.dumpSince < this.host.thresholds.resyncTimeoutMs) return;
    if (this.rules.loss.wantResync()) this.source.resync();
  }

  /** See Thresholds.refreshDumpMs. */
  private maybeRefreshDump(now: number, count: number): void {
    const t = this.host.thresholds;
    if (!this.source || t.refreshDumpMs <= 0 || this.rules.port.firingCount === 0 || this.tracker.inDump) return;
    if (count > t.refreshDumpMaxCount || now - this.lastRefreshMs < t.refreshDumpMs) return;
    this.lastRefreshMs = now;
    this.source.resync();
  }

  /**
   * One counter poll: read the kernel counters (one small netlink dump) and run every rule
   * against them; with `stats`, also build the namespace's stats message (returned). Null when
   * the counters could not be read (said through host.fail) or the pipeline is closed.
   */
  async poll(stats: boolean): Promise<StatsMessage | null> {
    if (this.closed || !this.source) return null;
    let snap: CounterSnapshot;
    try {
      snap = await this.source.readCounters();
      this.countersRead = true;
      this.countersFailing = false;
    } catch (err) {
      this.countersFailing = true;
      this.host.fail(err as Error);
      return null;
    }
    if (this.closed) return null;
    let out: StatsMessage | null = null;
    // A rule or listener that throws must not reject the timer's promise (an unhandled
    // rejection would take the daemon down).
    this.guard(() => {
      const now = this.host.clock.now();
      const delta = this.rules.evaluate(snap, now);
      this.dropsSinceStats += delta.drop;
      this.maybeResync();
      this.maybeRefreshDump(now, snap.count);
      if (!stats) return;
      out = this.statsBuilder.build(snap, this.dropsSinceStats, now);
      this.dropsSinceStats = 0;
      const nflog = this.nflogGroups();
      if (nflog.length > 0) out.nflog = nflog;
    });
    return out;
  }

  /** The busiest keys now (alerts run every poll: a stats message can be up to a second older). */
  top(): TopEntry[] {
    return topKeys(this.tracker.keys, TOP_N, this.nowSec(), this.name);
  }

  /** Does this namespace's rule logging to NFLOG (group, prefix) drop or reject? null: no rule says. */
  nflogDenies(group: number, prefix: string): boolean | null {
    return logDenies(this.ruleset.current, group, prefix);
  }

  /** Per (proto, NAT address): the busiest destination's utilization (for /metrics; cached 5 s). */
  natAddresses(): NatAddressEntry[] {
    return natAddressesCached(this.tracker, this.host.clock.now()).map((e) => ({ ...e, netns: this.name }));
  }

  /** 'starting' until the first table dump ended and the counters were read once; 'degraded' while counter reads fail. */
  readiness(): Readiness {
    if (!this.firstDumpEnded || !this.countersRead) return 'starting';
    return this.countersFailing ? 'degraded' : 'ok';
  }

  totals(): Totals {
    return {
      eventsReceived: { ...this.received },
      eventsLost: { conntrack: lostEvents(this.lost.conntrack), nflog: lostEvents(this.lost.nflog) },
      nflogPackets: this.nflogCounts.list().map((c) => ({ ...c, netns: this.name })),
    };
  }

  /** Re-reads the ruleset now (a change notification does this; legacy tables send none). */
  async refreshRuleset(): Promise<void> {
    try {
      const { info, interfaces } = await this.ruleset.refresh();
      // Also when unchanged: a read that failed meanwhile marked capacities unknown (no-op otherwise).
      this.tracker.capacity.setRuleset(info);
      // What could not be read marks capacities unknown, and is said once (again only if it changes).
      if (!this.closed) this.sayUnreadable(info);
      this.applyInterfaces(interfaces);
    } catch (err) {
      // Capacities become unknown: say why (the host repeats a recurring cause once a minute).
      // A read that was in flight when close() ran has nobody left to tell.
      this.tracker.capacity.setUnreadable([`ruleset unreadable: ${(err as Error).message}`]);
      if (!this.closed) this.host.fail(new NatwatchError('ERUNTIME', `reading the ruleset: ${(err as Error).message}`, { cause: err }));
    }
  }

  /**
   * What could not be read is said once (again only if it changes). Tables that could not even
   * be listed (iptables-legacy without CAP_DAC_READ_SEARCH, which the systemd unit does not grant:
   * docs/security.md) may not exist: a warning, once per namespace; the rest is an error. Either
   * way the capacities such a part could explain stay unknown, with the line as their reason.
   */
  private sayUnreadable(r: Ruleset): void {
    const unchecked = new Set(r.unchecked);
    const fresh = [...unchecked].filter((l) => !this.saidUnchecked.has(l));
    for (const l of fresh) this.saidUnchecked.add(l);
    if (fresh.length > 0) this.host.warn(`${fresh.join('; ')}; NAT capacities no readable rule explains are reported unknown`);
    const unreadable = r.unreadable.filter((l) => !unchecked.has(l)).join('; ');
    if (unreadable === this.saidUnreadable) return;
    this.saidUnreadable = unreadable;
    if (unreadable) this.host.fail(new NatwatchError('EPERM', `part of the ruleset is unreadable, capacities it could explain are unknown: ${unreadable}`));
  }

  private applyInterfaces(ifs: Map<string, string[]>): void {
    if (!this.opts.localAddrs) this.tracker.setLocalAddrs([...ifs.values()].flat());
    this.tracker.capacity.setInterfaces(ifs);
  }

  private async refreshAddrs(): Promise<void> {
    try {
      this.applyInterfaces(await readInterfaces(this.path));
    } catch (err) {
      if (!this.closed) this.host.fail(new NatwatchError('ERUNTIME', `reading interface addresses: ${(err as Error).message}`, { cause: err }));
    }
  }

  /** A handler must never throw into the source's batch loop. */
  private guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.host.fail(err as Error);
    }
  }

  /**
   * Stops the source and timers. With `resolveWhy` (the namespace is gone or no longer watched)
   * its firing alerts are resolved with that text; its keys go with the tracker.
   */
  async close(resolveWhy?: string): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const t of this.timers) this.host.clock.clearInterval(t);
    this.timers = [];
    this.watch?.close();
    this.watch = null;
    const s = this.source;
    this.source = null;
    try {
      if (s) await s.close();
    } finally {
      if (resolveWhy !== undefined) this.alerts.resolveAll(resolveWhy);
    }
  }
}
