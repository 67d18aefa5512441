// Wire contracts, documented in docs/protocol.md. Tests outside the project rely on these shapes: change them
// only by versioning the protocol.
//
// `netns` on alerts, events and top entries names the namespace a message is about: NAME for
// /var/run/netns/NAME (given, or found there with `--netns all`), the path as given for any
// other nsfs path, null for natwatch's own namespace.

export type Family = 'ipv4' | 'ipv6';

export interface Tuple {
  src: string;
  dst: string;
  /** Source port, or the ICMP id where ports do not apply. */
  sport: number;
  dport: number;
}

/** One decoded conntrack event, as `natwatch events --json` prints it. */
export interface ConntrackEvent {
  type: 'event';
  source: 'conntrack';
  netns: string | null;
  event: 'new' | 'update' | 'destroy';
  id: number;
  ts: string;
  family: Family;
  proto: string;
  orig: Tuple;
  reply: Tuple;
  state: string | null;
  nat: 'snat' | 'dnat' | 'both' | null;
  timeout: number;
  mark: number;
  zone: number;
}

/** One packet logged through NFLOG. */
export interface NflogEvent {
  type: 'event';
  source: 'nflog';
  netns: string | null;
  ts: string;
  group: number;
  prefix: string;
  family: Family;
  proto: string;
  src: string;
  dst: string;
  sport: number;
  dport: number;
  indev: string | null;
  outdev: string | null;
  hook: number;
  mark: number;
  len: number;
}

export type WireEvent = ConntrackEvent | NflogEvent;

export type AlertKind =
  | 'nat_port_exhaustion'
  | 'local_port_exhaustion'
  | 'conntrack_table_full'
  | 'conntrack_drops'
  | 'nflog_drop'
  | 'event_loss';

export type Severity = 'warning' | 'critical';

export interface PortKey {
  proto: string;
  /** NAT address; the source address for local_port_exhaustion. */
  natIp: string;
  dstIp: string;
  dstPort: number;
}

export interface NflogKey {
  prefix: string;
  group: number;
  proto: string;
  dstIp: string;
  dstPort: number;
}

/**
 * An nflog_drop aggregate: one rule's drops to the destinations past the per-destination cap
 * (their number is the alert's `destinations`, the top ones in its `detail.top`).
 */
export interface NflogRuleKey {
  prefix: string;
  group: number;
  proto: null;
  dstIp: null;
  dstPort: null;
}

export type AlertKey = PortKey | NflogKey | NflogRuleKey | Record<string, never>;

export interface Alert {
  type: 'alert';
  seq: number;
  ts: string;
  kind: AlertKind;
  severity: Severity;
  state: 'firing' | 'resolved';
  netns: string | null;
  key: AlertKey;
  used: number | null;
  capacity: number | null;
  utilization: number | null;
  drops: number;
  message: string;
  /**
   * nflog_drop aggregate only (key with dstIp/dstPort null): how many destinations the rule
   * dropped packets to beyond the per-destination alerts.
   */
  destinations?: number;
  /** Predicted seconds until the key is exhausted at the current trend (port kinds only). */
  etaSeconds?: number | null;
  /** Port kinds: where `capacity` came from (docs/kernel-facts.md). */
  capacitySource?: CapacitySource;
  /** Why the source is `unknown` or `default` (e.g. the capability that is missing); else null. */
  capacityReason?: string | null;
  /** Kind-specific detail (counter deltas, loss counts, ...). */
  detail?: Record<string, unknown>;
}

/**
 * Where a capacity came from: `flag` (--nat-ports), `config` (natRules), `ruleset` (the rule
 * that produced the NAT address), `default` (no rule names a range: the kernel's 1024-65535),
 * `unknown` (part of the ruleset could not be read; capacityReason says what), `sysctl` (local
 * keys: ip_local_port_range minus ip_local_reserved_ports).
 */
export type CapacitySource = 'flag' | 'config' | 'ruleset' | 'default' | 'unknown' | 'sysctl';

export interface TopEntry {
  /** Always set by natwatch (optional for entries built by embedders and tests: the streamer's then). */
  netns?: string | null;
  key: PortKey;
  used: number;
  capacity: number;
  /** Always set by natwatch (optional for entries built by embedders and tests). */
  capacitySource?: CapacitySource;
  capacityReason?: string | null;
  utilization: number;
  newPerSec: number;
}

export interface KernelCounters {
  found: number;
  invalid: number;
  insert: number;
  insert_failed: number;
  drop: number;
  early_drop: number;
  error: number;
  search_restart: number;
  clash_resolve: number;
  chaintoolong: number;
}

/**
 * An NFLOG group natwatch was to bind. Groups chosen from the ruleset are best effort: one that
 * another program (ulogd) holds is `bound: false` with the reason, and retried.
 */
export interface NflogGroupStatus {
  group: number;
  bound: boolean;
  /** Why not bound (null when bound). */
  reason: string | null;
  /** The namespace it is bound in, when several are watched (null: natwatch's own). */
  netns?: string | null;
}

/** One namespace's part of a stats message. */
export interface NamespaceStats {
  netns: string | null;
  conntrack: { count: number; max: number; buckets: number };
  counters: KernelCounters;
  rates: { new: number; destroy: number; drop: number };
  top: TopEntry[];
}

export interface StatsMessage {
  type: 'stats';
  ts: string;
  /** Watching several namespaces: the sums over them (top: the busiest keys of all). */
  conntrack: { count: number; max: number; buckets: number };
  counters: KernelCounters;
  rates: { new: number; destroy: number; drop: number };
  top: TopEntry[];
  /** The NFLOG groups and whether natwatch holds them (absent when the source has none); each with its netns when several namespaces are watched. */
  nflog?: NflogGroupStatus[];
  /** Each namespace's own numbers; present only when several namespaces (or `all`) are watched. */
  namespaces?: NamespaceStats[];
}

export interface HelloMessage {
  type: 'hello';
  version: string;
  host: string;
  netns: string | null;
  startedAt: string;
  seq: number;
  nflog?: NflogGroupStatus[];
}

export interface GapMessage {
  type: 'gap';
  dropped: number;
  reason: string;
}

export type ServerMessage = HelloMessage | Alert | StatsMessage | WireEvent | GapMessage;

/**
 * What the server, `tail` and embedders consume: the running pipeline (source → tracker →
 * alerts). Implemented by `Streamer` (src/streamer.ts); tests use a fake.
 */
export interface StreamerEvents {
  alert: [Alert];
  stats: [StatsMessage];
  event: [WireEvent];
  error: [Error];
  /** A namespace began to be watched, or stopped (deleted or excluded under `--netns all`). */
  namespace: [{ netns: string | null; state: 'watching' | 'gone' }];
  /** Worth a log line, not a failure (an NFLOG group another program holds, then takes back). */
  warning: [string];
}

export type Readiness = 'starting' | 'ok' | 'degraded';

/** One watched namespace's event counts (StreamerLike.totals). */
export interface NamespaceTotals {
  netns: string | null;
  eventsReceived: { conntrack: number; nflog: number };
  eventsLost: { conntrack: number; nflog: number };
}

export interface StreamerLike {
  on<K extends keyof StreamerEvents>(name: K, fn: (...args: StreamerEvents[K]) => void): this;
  off<K extends keyof StreamerEvents>(name: K, fn: (...args: StreamerEvents[K]) => void): this;
  /** Alerts currently firing (latest state of each). */
  firing(): Alert[];
  /** Alerts with seq > since still held in the bounded replay ring, oldest first. */
  alertsSince(since: number): Alert[];
  /** Last alert seq issued (0 before the first). */
  readonly seq: number;
  top(): TopEntry[];
  lastStats(): StatsMessage | null;
  /** The namespace watched (its name; null: natwatch's own), or the `--netns` values joined by ',' when several are. */
  readonly netns: string | null;
  readonly startedAt: string;
  /**
   * Holds conntrack UPDATE events on (the kernel sends only NEW and DESTROY otherwise) until
   * the returned release function is called; a refcount, for consumers of `event` messages.
   */
  retainEvents(): () => void;
  /** The NFLOG groups and whether they are bound (hello, stats, metrics). */
  nflogGroups(): NflogGroupStatus[];
  /**
   * For /healthz: 'starting' until the first table dump ended and the counters were read once,
   * 'degraded' while a source has failed and is being re-opened, else 'ok'.
   */
  readiness(): Readiness;
  /** Totals for /metrics. */
  totals(): {
    eventsReceived: { conntrack: number; nflog: number };
    eventsLost: { conntrack: number; nflog: number };
    /** Packets logged per NFLOG (group, trimmed prefix), bounded (see src/track/nflog-counts.ts). */
    nflogPackets?: Array<{ group: number; prefix: string; packets: number }>;
    /** With several namespaces watched: each one's own counts (the sums above also keep those let go). */
    namespaces?: NamespaceTotals[];
  };
  /**
   * Does the rule that logs to NFLOG (group, prefix) drop or reject? true / false, or null when
   * the ruleset does not say (ECS `event.type` is `denied` only for true). From the ruleset reader.
   */
  nflogDenies?(group: number, prefix: string, netns?: string | null): boolean | null;
  /** Per (proto, NAT address): the busiest destination's utilization (for /metrics). */
  natAddresses?(): Array<{ proto: string; natIp: string; maxUtilization: number; destinations: number }>;
  close(): Promise<void>;
}
