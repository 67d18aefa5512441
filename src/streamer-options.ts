// What a Streamer is created with (the library's createStreamer options). Its own file so the
// parts of the pipeline below the streamer (src/namespace-pipeline.ts, src/namespace-set.ts)
// can take their share of it by name (Pick) without importing the streamer.
import type { Clock } from './alert/clock.js';
import type { Thresholds } from './alert/thresholds.js';
import type { NetnsEntry } from './netns.js';
import type { EventSource } from './source/types.js';
import type { NatRuleConfig } from './track/capacity.js';

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
