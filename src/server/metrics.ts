// Prometheus metrics on a registry of our own (never prom-client's global one, so an embedding
// service's metrics and ours do not collide). Values are read from the streamer at scrape time;
// per-destination series exist for the current top keys only, so cardinality stays bounded.
import { Counter, Gauge, Registry } from 'prom-client';
import type { AlertKind, StreamerLike } from '../types.js';
import type { StreamClient } from './client.js';

const KINDS: readonly AlertKind[] = [
  'nat_port_exhaustion',
  'local_port_exhaustion',
  'conntrack_table_full',
  'conntrack_drops',
  'nflog_drop',
  'event_loss',
];

/** Bound on per-destination series (stats.top is already at most 10). */
const TOP_SERIES = 10;

export interface MetricsSources {
  streamer: StreamerLike;
  clients(): Iterable<StreamClient>;
  /** Clients closed for being too slow, over the server's life. */
  slowClosed(): number;
  /** Skipped messages of clients that have disconnected since. */
  droppedByGone(): number;
}

function setCounter(c: Counter<string>, labels: Record<string, string>, value: number): void {
  // Counters mirror cumulative totals kept elsewhere: reset, then add the current total.
  c.inc(labels, Math.max(0, value));
}

export function createMetrics(src: MetricsSources): Registry {
  const registry = new Registry();
  const s = src.streamer;

  type Totals = ReturnType<StreamerLike['totals']>;
  const perSource = (name: string, help: string, pick: (t: Totals) => { conntrack: number; nflog: number }): void => {
    new Counter({
      name,
      help,
      labelNames: ['source'],
      registers: [registry],
      collect() {
        this.reset();
        const t = pick(s.totals());
        setCounter(this, { source: 'conntrack' }, t.conntrack);
        setCounter(this, { source: 'nflog' }, t.nflog);
      },
    });
  };
  perSource('natwatch_events_received_total', 'Events received from the kernel, by source.', (t) => t.eventsReceived);
  perSource(
    'natwatch_events_lost_total',
    'Events the kernel produced that never reached natwatch (socket overflow, queue full, nflog sequence gaps).',
    (t) => t.eventsLost,
  );
  const ct = (name: string, help: string, pick: (c: { count: number; max: number; buckets: number }) => number): void => {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        const st = s.lastStats();
        if (st) this.set(pick(st.conntrack));
      },
    });
  };
  new Gauge({
    name: 'natwatch_nflog_group_bound',
    help: 'Whether natwatch holds NFLOG group N (1) or another program does (0; retried).',
    labelNames: ['group'],
    registers: [registry],
    collect() {
      this.reset();
      for (const g of s.nflogGroups()) this.set({ group: String(g.group) }, g.bound ? 1 : 0);
    },
  });
  ct('natwatch_conntrack_entries', 'Live entries in the conntrack table (nf_conntrack_count).', (c) => c.count);
  ct('natwatch_conntrack_max', 'Conntrack table limit (nf_conntrack_max).', (c) => c.max);
  ct('natwatch_conntrack_buckets', 'Conntrack hash buckets (nf_conntrack_buckets).', (c) => c.buckets);
  new Counter({
    name: 'natwatch_conntrack_counter_total',
    help: 'Kernel per-CPU conntrack statistics summed over CPUs (conntrack -S), by counter.',
    labelNames: ['counter'],
    registers: [registry],
    collect() {
      this.reset();
      const st = s.lastStats();
      if (!st) return;
      for (const [name, v] of Object.entries(st.counters)) if (typeof v === 'number') setCounter(this, { counter: name }, v);
    },
  });
  new Gauge({
    name: 'natwatch_alerts_firing',
    help: 'Alerts currently firing, by kind.',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      const n = new Map<string, number>(KINDS.map((k) => [k, 0]));
      for (const a of s.firing()) n.set(a.kind, (n.get(a.kind) ?? 0) + 1);
      for (const [kind, v] of n) this.set({ kind }, v);
    },
  });
  const topLabels = ['proto', 'nat_ip', 'dst_ip', 'dst_port'];
  const perKey = (name: string, help: string, pick: (e: ReturnType<StreamerLike['top']>[number]) => number): void => {
    new Gauge({
      name,
      help,
      labelNames: topLabels,
      registers: [registry],
      collect() {
        this.reset();
        for (const e of s.top().slice(0, TOP_SERIES)) {
          this.set({ proto: e.key.proto, nat_ip: e.key.natIp, dst_ip: e.key.dstIp, dst_port: String(e.key.dstPort) }, pick(e));
        }
      },
    });
  };
  perKey('natwatch_destination_utilization', 'Port utilization (used/capacity) of the busiest destinations (top 10 only).', (e) => e.utilization);
  perKey('natwatch_destination_used', 'Connections using ports toward the busiest destinations (top 10 only).', (e) => e.used);
  perKey('natwatch_destination_capacity', 'Port capacity toward the busiest destinations (top 10 only).', (e) => e.capacity);
  new Gauge({
    name: 'natwatch_alert_seq',
    help: 'Sequence number of the last alert issued.',
    registers: [registry],
    collect() {
      this.set(s.seq);
    },
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
  new Gauge({
    name: 'natwatch_ws_client_dropped',
    help: 'Messages skipped for each connected client because it fell behind (gap).',
    labelNames: ['client'],
    registers: [registry],
    collect() {
      this.reset();
      for (const c of src.clients()) this.set({ client: String(c.id) }, c.droppedTotal);
    },
  });
  new Counter({
    name: 'natwatch_ws_dropped_total',
    help: 'Messages skipped for slow clients, all clients, over the server life.',
    registers: [registry],
    collect() {
      this.reset();
      let n = src.droppedByGone();
      for (const c of src.clients()) n += c.droppedTotal;
      setCounter(this, {}, n);
    },
  });
  new Counter({
    name: 'natwatch_ws_slow_closed_total',
    help: 'Clients closed with 1013 because they could not take alerts.',
    registers: [registry],
    collect() {
      this.reset();
      setCounter(this, {}, src.slowClosed());
    },
  });
  return registry;
}
