// The namespaces one Streamer watches: a NamespacePipeline for each, opened at start and, under
// `--netns all`, opened and dropped while running as /var/run/netns changes (src/netns-follow.ts).
// A namespace that goes has its keys dropped and its alerts resolved; a found one that fails to
// start is tried again later. What the streamer asks of all of them at once (a counter poll,
// stats, totals, top keys, readiness) is answered here, merged or summed over the namespaces.
import type { AlertEngine } from './alert/engine.js';
import { AlertScope } from './alert/scope.js';
import { NatwatchError, UsageError } from './errors.js';
import { NamespacePipeline, pipelineOptions, type PipelineHost, type PipelineOptions, type Totals } from './namespace-pipeline.js';
import type { NamespaceFollower, NetnsTarget } from './netns-follow.js';
import type { StreamerOptions } from './streamer-options.js';
import type { NatRuleConfig } from './track/capacity.js';
import type { NatAddressEntry } from './track/nat-addresses.js';
import { combineStats, mergeTop } from './track/stats.js';
import type { Tracker } from './track/tracker.js';
import type { NflogGroupStatus, Readiness, StatsMessage, TopEntry } from './types.js';

/** What the set needs from the streamer that holds it: what every pipeline needs, and two notices. */
export interface NamespaceSetHost extends PipelineHost {
  /** A namespace leaves the set (called before its pipeline closes): forget what is kept about it. */
  leaving(name: string | null): void;
  /** A namespace began to be watched, or was let go. */
  changed(netns: string | null, state: 'watching' | 'gone'): void;
}

/** A namespace found by `all` that failed to start is tried again after this long. */
const RETRY_MS = 5_000;

export class NamespaceSet {
  /** Several given, or `all`: stats carry `namespaces`, errors and warnings name their namespace. */
  private readonly several: boolean;
  private readonly pipelineOpts: PipelineOptions;
  /** Running pipelines by NetnsTarget key, in the order they started. */
  private readonly pipelines = new Map<string, NamespacePipeline>();
  private readonly starting = new Map<string, NamespacePipeline>();
  /** Found namespaces whose start failed: not tried again before this time. */
  private readonly retryAt = new Map<string, number>();
  /** Totals of pipelines closed while running (metrics counters never go back). */
  private readonly retired: Pick<Totals, 'eventsReceived' | 'eventsLost'> = { eventsReceived: { conntrack: 0, nflog: 0 }, eventsLost: { conntrack: 0, nflog: 0 } };
  /** What the pipelines were last told (setUpdates): conntrack UPDATE events wanted. */
  private updatesOn = false;
  /** Every namespace watched at the start has been ready once (see readiness()). */
  private readyOnce = false;
  private closed = false;

  constructor(
    /** Which namespaces: the set opens its targets, and follows them under `all`. */
    private readonly follower: NamespaceFollower,
    private readonly engine: AlertEngine,
    private readonly opts: StreamerOptions,
    private readonly host: NamespaceSetHost,
  ) {
    this.several = follower.several;
    this.pipelineOpts = pipelineOptions(opts);
  }

  /**
   * Opens every namespace the spec means now. A namespace given by name or path that fails fails
   * the start (the caller closes the set); one found by `all` is reported and tried again later.
   */
  async start(): Promise<void> {
    const targets = this.follower.targets();
    if (this.opts.source && targets.length !== 1) throw new UsageError('an injected source watches exactly one namespace');
    const results = await Promise.allSettled(targets.map((t) => this.open(t)));
    const failures = results.flatMap((r, i) => (r.status === 'rejected' ? [{ t: targets[i]!, err: r.reason as Error }] : []));
    const fatal = failures.find((f) => !f.t.found) ?? (this.pipelines.size === 0 ? failures[0] : undefined);
    if (fatal) throw fatal.err;
    for (const f of failures) this.retryLater(f.t, f.err);
  }

  /** With `all`: follows /var/run/netns from now on (no-op otherwise). */
  follow(): void {
    this.follower.start(() => this.sync());
  }

  /** Starts a pipeline for the target; it runs only if the target is still wanted by then. */
  private async open(t: NetnsTarget): Promise<void> {
    const host: PipelineHost = {
      clock: this.host.clock,
      thresholds: this.host.thresholds,
      wantsEvents: () => this.host.wantsEvents(),
      event: (e) => this.host.event(e),
      fail: (err) => this.host.fail(this.about(t.name, err)),
      warn: (message) => this.host.warn(this.several && t.name !== null ? `netns ${t.name}: ${message}` : message),
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
      await p.close(goneText(t.name));
      return;
    }
    this.pipelines.set(t.key, p);
    p.setUpdates(this.updatesOn); // a consumer may have come or gone while it started
    this.host.changed(t.name, 'watching');
  }

  private retryLater(t: NetnsTarget, err: Error): void {
    this.retryAt.set(t.key, this.host.clock.now() + RETRY_MS);
    this.host.fail(err);
  }

  /** `all`: compares what /var/run/netns holds now with what runs, and opens and closes to match. */
  private sync(): void {
    if (this.closed) return;
    const want = new Map(this.follower.targets().map((t) => [t.key, t]));
    for (const [key, p] of this.pipelines) if (!want.has(key)) void this.drop(key, p);
    const now = this.host.clock.now();
    for (const [key, t] of want) {
      if (this.pipelines.has(key) || this.starting.has(key) || (this.retryAt.get(key) ?? 0) > now) continue;
      this.retryAt.delete(key);
      this.open(t).catch((err: Error) => this.retryLater(t, err));
    }
    for (const key of this.retryAt.keys()) if (!want.has(key)) this.retryAt.delete(key);
  }

  /** A namespace went away: its keys go with its pipeline, its alerts resolve, its totals are kept. */
  private async drop(key: string, p: NamespacePipeline): Promise<void> {
    this.pipelines.delete(key);
    const t = p.totals();
    for (const s of ['conntrack', 'nflog'] as const) {
      this.retired.eventsReceived[s] += t.eventsReceived[s];
      this.retired.eventsLost[s] += t.eventsLost[s];
    }
    this.host.leaving(p.name);
    try {
      await p.close(goneText(p.name));
    } catch (err) {
      this.host.fail(this.about(p.name, err as Error));
    }
    this.host.changed(p.name, 'gone');
  }

  /** An error about one namespace names it when several are watched. */
  private about(name: string | null, err: Error): Error {
    if (!this.several || name === null || err.message.includes(name)) return err;
    return err instanceof NatwatchError ? new NatwatchError(err.code, `netns ${name}: ${err.message}`, { cause: err }) : new Error(`netns ${name}: ${err.message}`, { cause: err });
  }

  /** NAT overrides changed (SIGHUP): namespaces opened later take them too. A field left undefined keeps its value; null clears it. */
  setOverrides(o: { natPorts?: [number, number] | null; natRules?: NatRuleConfig[] | null }): void {
    if (o.natPorts !== undefined) this.pipelineOpts.natPorts = o.natPorts ?? undefined;
    if (o.natRules !== undefined) this.pipelineOpts.natRules = o.natRules ?? undefined;
    if (o.natPorts === undefined && o.natRules === undefined) return;
    for (const p of this.pipelines.values()) p.setOverrides(o);
  }

  /** Conntrack UPDATE events wanted, in every namespace (and in those opened later). */
  setUpdates(on: boolean): void {
    if (on === this.updatesOn) return;
    this.updatesOn = on;
    for (const p of this.pipelines.values()) p.setUpdates(on);
  }

  async refreshRuleset(): Promise<void> {
    await Promise.all([...this.pipelines.values()].map((p) => p.refreshRuleset()));
  }

  /**
   * One counter poll of every namespace, in turn (see NamespacePipeline.poll). With `stats`, the
   * stats message: the one namespace's, or with several their sums and each one's part; null
   * when none could be read.
   */
  async poll(stats: boolean): Promise<StatsMessage | null> {
    const parts: Array<{ netns: string | null; stats: StatsMessage }> = [];
    for (const p of [...this.pipelines.values()]) {
      const s = await p.poll(stats);
      if (s) parts.push({ netns: p.name, stats: s });
    }
    if (!stats || this.closed || parts.length === 0) return null;
    if (!this.several) return parts[0]!.stats;
    const msg = combineStats(parts, this.host.clock.now());
    const nflog = this.nflogGroups();
    if (nflog.length > 0) msg.nflog = nflog;
    return msg;
  }

  /** The NFLOG groups of every namespace and whether they are bound (each with its netns when several are watched). */
  nflogGroups(): NflogGroupStatus[] {
    return [...this.pipelines.values()].flatMap((p) => (this.several ? p.nflogGroups().map((g) => ({ ...g, netns: p.name })) : p.nflogGroups()));
  }

  /** The namespaces watched now, by name (null: natwatch's own). */
  names(): Array<string | null> {
    return [...this.pipelines.values()].map((p) => p.name);
  }

  /** The tracker of the first namespace watched; null before any runs. */
  firstTracker(): Tracker | null {
    const p = this.pipelines.values().next().value as NamespacePipeline | undefined;
    return p?.tracker ?? null;
  }

  /** With `netns`, that namespace's ruleset; without, the first namespace whose ruleset says. */
  nflogDenies(group: number, prefix: string, netns?: string | null): boolean | null {
    for (const p of this.pipelines.values()) {
      if (netns !== undefined && p.name !== netns) continue;
      const v = p.nflogDenies(group, prefix);
      if (v !== null) return v;
    }
    return null;
  }

  natAddresses(): NatAddressEntry[] {
    return [...this.pipelines.values()].flatMap((p) => p.natAddresses());
  }

  top(): TopEntry[] {
    return mergeTop([...this.pipelines.values()].map((p) => p.top()));
  }

  /**
   * 'starting' until every namespace watched at the start had its first table dump and counter
   * read (a namespace `all` finds later does not make the set 'starting' again), then 'degraded'
   * while any namespace's counters cannot be read, else 'ok'.
   */
  readiness(): Readiness {
    const ps = [...this.pipelines.values()];
    if (!this.readyOnce) {
      if (ps.length === 0 || ps.some((p) => p.readiness() === 'starting')) return 'starting';
      this.readyOnce = true;
    }
    return ps.some((p) => p.readiness() === 'degraded') ? 'degraded' : 'ok';
  }

  /** Summed over the namespaces watched now and those let go; with several, each watched one's own too. */
  totals(): Totals {
    const out: Totals = { eventsReceived: { ...this.retired.eventsReceived }, eventsLost: { ...this.retired.eventsLost }, nflogPackets: [] };
    if (this.several) out.namespaces = [];
    for (const p of this.pipelines.values()) {
      const t = p.totals();
      for (const s of ['conntrack', 'nflog'] as const) {
        out.eventsReceived[s] += t.eventsReceived[s];
        out.eventsLost[s] += t.eventsLost[s];
      }
      out.nflogPackets.push(...t.nflogPackets);
      out.namespaces?.push({ netns: p.name, eventsReceived: t.eventsReceived, eventsLost: t.eventsLost });
    }
    return out;
  }

  /** Stops following and closes every pipeline; those still starting close when their start returns. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.follower.stop();
    const all = [...this.pipelines.values()];
    this.pipelines.clear();
    const results = await Promise.allSettled(all.map((p) => p.close()));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }
}

function goneText(name: string | null): string {
  return `Network namespace ${name === null ? "natwatch's own" : `'${name}'`} is no longer watched (deleted or excluded): its connections are no longer tracked and its alerts are resolved`;
}
