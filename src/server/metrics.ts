// Prometheus metrics on a registry of our own (never prom-client's global one, so an embedding
// service's metrics and ours do not collide). Values are read from the streamer at scrape time.
// Names follow Prometheus conventions (`promtool check metrics` is clean, a test runs it):
// counters end in _total, ratios in _ratio, no type in a name. docs/metrics.md lists each one.
//
// Every natwatch series carries `netns` for a namespace other than natwatch's own and no such
// label for its own (labels.ts); the collectors refill from every one of `streamers()`
// (perNamespace) so that one registry can describe several namespaces.
import { release } from 'node:os';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { Alert, AlertKind, KernelCounters, NamespaceTotals, Severity, StreamerLike, TopEntry } from '../types.js';
import { VERSION } from '../version.js';
import type { StreamClient } from './client.js';
import { keyLabels, netnsLabels, netnsOf, PORT_KEY_LABELS } from './labels.js';

export const ALERT_KINDS: readonly AlertKind[] = [
  'nat_port_exhaustion',
  'local_port_exhaustion',
  'conntrack_table_full',
  'conntrack_drops',
  'nflog_drop',
  'event_loss',
];
const SEVERITIES: readonly Severity[] = ['warning', 'critical'];

/** The kernel's per-CPU conntrack statistics (`conntrack -S`), one counter each. */
export const KERNEL_STATS: ReadonlyArray<keyof KernelCounters> = [
  'found',
  'invalid',
  'insert',
  'insert_failed',
  'drop',
  'early_drop',
  'error',
  'search_restart',
  'clash_resolve',
  'chaintoolong',
];

/**
 * Per-destination series: the top N by utilization (stats.top), plus every destination with a
 * firing port alert, so an exhausted destination keeps its series while it matters even when
 * more than N are busy. The per-NAT-address aggregate never churns.
 */
const TOP_SERIES = 10;
/** Bound on per-NAT-address series (protocols × NAT addresses). */
const NAT_ADDRESS_SERIES = 256;

export interface MetricsSources {
  /** The namespaces served (one today; several with a multi-namespace daemon). */
  streamers(): Iterable<StreamerLike>;
  clients(): Iterable<StreamClient>;
  /** Clients closed for being too slow, over the server's life. */
  slowClosed(): number;
  /** Skipped messages of clients that have disconnected since. */
  droppedByGone(): number;
}

export interface Metrics {
  readonly registry: Registry;
  /** Stops listening to the streamers (the registry stays readable). */
  close(): void;
}

type Labels = Record<string, string>;

/**
 * A label set: the given labels plus netns (when not our own) — the item's own namespace when
 * it names one (multi-namespace streamers), else the streamer's.
 */
const withNs = (s: StreamerLike, labels: Labels = {}, item?: object): Labels => ({ ...labels, ...netnsLabels(netnsOf(item, s.netns)) });

type TableStats = { conntrack: { count: number; max: number; buckets: number }; counters: KernelCounters };
/** Each namespace's part of the last stats (`namespaces` when several are watched), else the whole. */
function statsParts(st: NonNullable<ReturnType<StreamerLike['lastStats']>>): Array<TableStats & { netns?: string | null }> {
  const parts = (st as { namespaces?: Array<TableStats & { netns: string | null }> }).namespaces;
  return parts && parts.length > 0 ? parts : [st];
}

function mirror(c: Counter<string>, labels: Labels, value: number): void {
  // Counters mirror cumulative totals kept elsewhere: collect() resets, then adds the total.
  c.inc(labels, Math.max(0, value));
}

export function createMetrics(src: MetricsSources): Metrics {
  const registry = new Registry();
  const each = (fn: (s: StreamerLike) => void): void => {
    for (const s of src.streamers()) fn(s);
  };
  /**
   * A collect() that refills a metric from every streamer at each scrape: what the last scrape
   * set is cleared first (a namespace that went, a key that left the top must not linger), then
   * `fill` sets each streamer's series (labelled with their namespace through withNs).
   */
  const perNamespace =
    <M extends Gauge | Counter>(fill: (metric: M, s: StreamerLike) => void) =>
    function collect(this: M): void {
      this.reset();
      each((s) => fill(this, s));
    };
  /** Each namespace's part of a streamer's last stats, with its labels (nothing before the first stats). */
  const eachPart = (s: StreamerLike, fn: (p: TableStats, labels: Labels) => void): void => {
    const st = s.lastStats();
    if (st) for (const p of statsParts(st)) fn(p, withNs(s, {}, p));
  };

  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 100 });
  // prom-client's sums of nodejs_active_{handles,requests,resources}{type} are gauges named
  // *_total, which promtool rejects; the per-type gauges stay.
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(name);

  new Gauge({
    name: 'natwatch_build_info',
    help: 'Always 1; the labels say which natwatch, Node.js and kernel this is.',
    labelNames: ['version', 'node_version', 'kernel'],
    registers: [registry],
  }).set({ version: VERSION, node_version: process.version, kernel: release() }, 1);

  type Totals = ReturnType<StreamerLike['totals']>;
  /**
   * Each watched namespace's labels and counts: with several watched, one entry per namespace
   * (its own counts), else one for the streamer's namespace. A streamer watching several has no
   * namespace of its own, so no series is labelled with its `--netns` list.
   */
  const watched = (s: StreamerLike): Array<{ labels: Labels; totals: Totals | NamespaceTotals }> => {
    const t = s.totals();
    return t.namespaces ? t.namespaces.map((n) => ({ labels: netnsLabels(n.netns), totals: n })) : [{ labels: withNs(s), totals: t }];
  };
  const perSource = (name: string, help: string, pick: (t: Totals | NamespaceTotals) => { conntrack: number; nflog: number }): void => {
    new Counter({
      name,
      help,
      labelNames: ['source', 'netns'],
      registers: [registry],
      collect: perNamespace((c, s) => {
        for (const { labels, totals } of watched(s)) {
          const t = pick(totals);
          mirror(c, { source: 'conntrack', ...labels }, t.conntrack);
          mirror(c, { source: 'nflog', ...labels }, t.nflog);
        }
      }),
    });
  };
  perSource('natwatch_events_received_total', 'Events received from the kernel, by source (conntrack, nflog).', (t) => t.eventsReceived);
  perSource(
    'natwatch_events_lost_total',
    'Events the kernel produced that never reached natwatch (socket overflow, queue full, NFLOG sequence gaps), by source.',
    (t) => t.eventsLost,
  );

  const table = (name: string, help: string, pick: (c: { count: number; max: number; buckets: number }) => number): void => {
    new Gauge({
      name,
      help,
      labelNames: ['netns'],
      registers: [registry],
      collect: perNamespace((g, s) => eachPart(s, (p, labels) => g.set(labels, pick(p.conntrack)))),
    });
  };
  new Gauge({
    name: 'natwatch_nflog_group_bound',
    help: 'Whether natwatch holds NFLOG group N (1) or another program does (0; retried every 30 s).',
    labelNames: ['group', 'netns'],
    registers: [registry],
    collect: perNamespace((m, s) => {
      for (const g of s.nflogGroups()) m.set(withNs(s, { group: String(g.group) }, g), g.bound ? 1 : 0);
    }),
  });
  table('natwatch_conntrack_entries', 'Entries in the conntrack table (nf_conntrack_count).', (c) => c.count);
  table('natwatch_conntrack_entries_limit', 'Conntrack table size limit (nf_conntrack_max); new flows are dropped at this count.', (c) => c.max);
  table('natwatch_conntrack_buckets', 'Conntrack hash table buckets (nf_conntrack_buckets); advised at entries_limit/4.', (c) => c.buckets);

  for (const stat of KERNEL_STATS) {
    new Counter({
      name: `natwatch_conntrack_${stat}_total`,
      help: `Kernel conntrack statistic '${stat}' summed over CPUs (conntrack -S, /proc/net/stat/nf_conntrack).`,
      labelNames: ['netns'],
      registers: [registry],
      collect: perNamespace((c, s) =>
        eachPart(s, (p, labels) => {
          const v = p.counters[stat];
          if (typeof v === 'number') mirror(c, labels, v);
        }),
      ),
    });
  }

  const portLabels = [...PORT_KEY_LABELS, 'netns'];
  const perKey = (name: string, help: string, pick: (e: TopEntry) => number): void => {
    new Gauge({
      name,
      help,
      labelNames: portLabels,
      registers: [registry],
      collect: perNamespace((g, s) => {
        for (const e of destinations(s)) g.set(withNs(s, keyLabels(e.key), e), pick(e));
      }),
    });
  };
  perKey('natwatch_nat_ports_used', `Source ports in use toward a destination through a NAT address (top ${TOP_SERIES} and alerting destinations).`, (e) => e.used);
  perKey('natwatch_nat_ports_limit', `Source ports available toward a destination through a NAT address: the NAT port range (top ${TOP_SERIES} and alerting destinations).`, (e) => e.capacity);
  perKey('natwatch_nat_ports_utilization_ratio', `nat_ports_used / nat_ports_limit, 0 to 1 (top ${TOP_SERIES} and alerting destinations).`, (e) => e.utilization);

  new Gauge({
    name: 'natwatch_nat_address_max_utilization_ratio',
    help: 'Per protocol and NAT address: the highest port utilization over its destinations, 0 to 1.',
    labelNames: ['proto', 'nat_ip', 'netns'],
    registers: [registry],
    collect: perNamespace((g, s) => {
      const list = s.natAddresses?.() ?? [];
      for (const a of list.slice(0, NAT_ADDRESS_SERIES)) g.set(withNs(s, { proto: a.proto, nat_ip: a.natIp }, a), a.maxUtilization);
    }),
  });

  /** Every kind × severity of each watched namespace: the alert metrics' rows. */
  const eachAlertRow = (s: StreamerLike, fn: (labels: Labels) => void): void => {
    for (const { labels } of watched(s)) for (const kind of ALERT_KINDS) for (const severity of SEVERITIES) fn({ kind, severity, ...labels });
  };

  new Gauge({
    name: 'natwatch_alerts_firing',
    help: 'Alerts currently firing, by kind and severity.',
    labelNames: ['kind', 'severity', 'netns'],
    registers: [registry],
    collect: perNamespace((g, s) => {
      // Zeros for every row, then the firing ones (under their own namespace when they name one).
      eachAlertRow(s, (labels) => g.set(labels, 0));
      for (const a of s.firing()) g.inc(withNs(s, { kind: a.kind, severity: a.severity }, a), 1);
    }),
  });

  // Fired = an alert started, or escalated to critical; re-sends of the same state are not counted.
  const fired = new Counter({
    name: 'natwatch_alerts_fired_total',
    help: 'Alerts that started firing (or escalated), by kind and severity.',
    labelNames: ['kind', 'severity', 'netns'],
    registers: [registry],
    // Every row is present from its first scrape (0).
    collect() {
      each((s) => eachAlertRow(s, (labels) => this.inc(labels, 0)));
    },
  });
  const listeners: Array<{ s: StreamerLike; fn: (a: Alert) => void }> = [];
  each((s) => {
    const last = new Map<string, Severity>();
    const fn = (a: Alert): void => {
      const id = `${netnsOf(a, s.netns) ?? ''}|${a.kind}|${JSON.stringify(a.key)}`;
      if (a.state === 'resolved') {
        last.delete(id);
        return;
      }
      if (last.get(id) === a.severity) return;
      last.set(id, a.severity);
      fired.inc(withNs(s, { kind: a.kind, severity: a.severity }, a));
    };
    s.on('alert', fn);
    listeners.push({ s, fn });
  });

  new Counter({
    name: 'natwatch_nflog_packets_total',
    help: 'Packets logged to NFLOG, by group and (trimmed) prefix; past 100 pairs the rest count under group "-1".',
    labelNames: ['group', 'prefix', 'netns'],
    registers: [registry],
    collect: perNamespace((m, s) => {
      for (const c of s.totals().nflogPackets ?? []) mirror(m, withNs(s, { group: String(c.group), prefix: c.prefix }), c.packets);
    }),
  });

  new Gauge({
    name: 'natwatch_alert_seq',
    help: 'Sequence number of the last alert issued.',
    labelNames: ['netns'],
    registers: [registry],
    // The stream's sequence is the streamer's: labelled only when it watches one namespace.
    collect: perNamespace((g, s) => g.set(s.totals().namespaces ? {} : withNs(s), s.seq)),
  });
  new Gauge({
    name: 'natwatch_ws_clients',
    help: 'Connected WebSocket stream clients.',
    registers: [registry],
    collect() {
      let n = 0;
      for (const _ of src.clients()) n++;
      this.set(n);
    },
  });
  new Counter({
    name: 'natwatch_ws_dropped_total',
    help: 'Messages skipped for slow stream clients (gap), all clients, over the server life.',
    registers: [registry],
    collect() {
      this.reset();
      let n = src.droppedByGone();
      for (const c of src.clients()) n += c.droppedTotal;
      mirror(this, {}, n);
    },
  });
  new Counter({
    name: 'natwatch_ws_slow_closed_total',
    help: 'Stream clients closed with 1013 because they could not take alerts.',
    registers: [registry],
    collect() {
      this.reset();
      mirror(this, {}, src.slowClosed());
    },
  });
  return {
    registry,
    close() {
      for (const { s, fn } of listeners.splice(0)) s.off('alert', fn);
    },
  };
}

/** Top N plus the destinations of firing NAT port alerts (their latest numbers). */
function destinations(s: StreamerLike): TopEntry[] {
  const out = s.top().slice(0, TOP_SERIES);
  const idOf = (item: object, key: object): string => `${netnsOf(item, s.netns) ?? ''}|${JSON.stringify(key)}`;
  const seen = new Set(out.map((e) => idOf(e, e.key)));
  for (const a of s.firing()) {
    if (a.kind !== 'nat_port_exhaustion' || a.used === null || a.capacity === null) continue;
    const key = a.key as TopEntry['key'];
    const id = idOf(a, key);
    if (seen.has(id)) continue;
    seen.add(id);
    const entry = { key, used: a.used, capacity: a.capacity, utilization: a.utilization ?? 0, newPerSec: 0 } as TopEntry;
    if ('netns' in a) (entry as { netns?: unknown }).netns = (a as { netns?: unknown }).netns;
    out.push(entry);
  }
  return out;
}
