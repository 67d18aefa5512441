// Pushes natwatch's alerts to one or more Alertmanagers (an HA pair gets every alert, as
// Prometheus does). Alertmanager forgets an alert at its endsAt, so a firing alert is re-sent
// every `resendMs` with endsAt three intervals ahead (a dead natwatch's alerts expire on their
// own); a resolved alert is sent once with endsAt = the resolve time.
//
// Per Alertmanager: a bounded queue keyed by alert identity (a newer state of the same alert
// replaces the queued one; past `queueMax` the oldest is dropped and counted), one POST in
// flight, retries with capped exponential backoff. A failure is logged once per outage, and
// the recovery once; every failed POST is counted in natwatch_alertmanager_errors_total.
import { hostname } from 'node:os';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Alert, StreamerLike } from '../types.js';
import { logger, type Logger } from '../log.js';
import { amAnnotations, amLabels, fingerprint, type AmAlert } from './payload.js';

export interface PusherOptions {
  /** Alertmanager base URLs (`http://am:9093`); alerts go to URL/api/v2/alerts. */
  urls: string[];
  /** `instance` label (default: the host name). */
  instance?: string;
  /** Re-send period of firing alerts (default 60 s); endsAt is 3 periods ahead. */
  resendMs?: number;
  /** Alerts waiting per Alertmanager (default 1000); the oldest are dropped past it. */
  queueMax?: number;
  /** Backoff between failed attempts: min, doubling to max (default 1 s .. 60 s). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** Per request (default 10 s). */
  timeoutMs?: number;
  /** Alerts per POST (default 100). */
  batchMax?: number;
  logger?: Logger;
}

interface Active {
  alert: Alert;
  startsAt: string;
  labels: Record<string, string>;
}

/** One Alertmanager: its queue and sender. */
class Target {
  readonly endpoint: string;
  readonly queue = new Map<string, AmAlert>();
  sent = 0;
  errors = 0;
  dropped = 0;
  private busy = false;
  private timer: NodeJS.Timeout | null = null;
  private backoffMs = 0;
  private down: string | null = null;
  private closed = false;

  constructor(
    readonly url: string,
    private readonly o: Required<Omit<PusherOptions, 'urls' | 'instance' | 'logger'>>,
    private readonly log: Logger,
  ) {
    this.endpoint = url.replace(/\/+$/, '') + '/api/v2/alerts';
  }

  push(id: string, a: AmAlert): void {
    if (this.closed) return;
    this.queue.delete(id); // re-insert at the end: the newest state of this alert
    this.queue.set(id, a);
    while (this.queue.size > this.o.queueMax) {
      this.queue.delete(this.queue.keys().next().value!);
      this.dropped++;
    }
    if (!this.timer) this.kick();
  }

  private kick(delayMs = 0): void {
    if (this.closed || this.busy) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.flush();
    }, delayMs);
    this.timer.unref();
  }

  /** Sends what is queued, batch by batch; on failure keeps it and retries after a backoff. */
  async flush(): Promise<void> {
    if (this.busy || this.closed) return;
    this.busy = true;
    try {
      while (this.queue.size > 0 && !this.closed) {
        const batch = [...this.queue].slice(0, this.o.batchMax);
        const err = await this.post(batch.map(([, a]) => a));
        if (err !== null) {
          this.errors++;
          if (this.down === null) this.log.warn({ alertmanager: this.url, err }, 'alertmanager unreachable: alerts are queued and retried');
          this.down = err;
          this.backoffMs = Math.min(this.o.maxBackoffMs, this.backoffMs === 0 ? this.o.minBackoffMs : this.backoffMs * 2);
          this.busy = false;
          this.kick(this.backoffMs);
          return;
        }
        // Sent: drop exactly what was sent (an alert re-queued meanwhile is a newer object).
        for (const [id, a] of batch) if (this.queue.get(id) === a) this.queue.delete(id);
        this.sent += batch.length;
        if (this.down !== null) this.log.info({ alertmanager: this.url, queued: this.queue.size }, 'alertmanager reachable again');
        this.down = null;
        this.backoffMs = 0;
      }
    } finally {
      this.busy = false;
    }
  }

  private async post(alerts: AmAlert[]): Promise<string | null> {
    try {
      const res = await fetch(this.endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(alerts),
        signal: AbortSignal.timeout(this.o.timeoutMs),
      });
      const text = await res.text().catch(() => '');
      if (res.ok) return null;
      return `HTTP ${res.status}${text ? `: ${text.slice(0, 200).trim()}` : ''}`;
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      return e.cause?.code ?? e.cause?.message ?? e.message;
    }
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}

export class AlertmanagerPusher {
  private readonly targets: Target[];
  private readonly active = new Map<string, Active>();
  private readonly instance: string;
  private readonly resendMs: number;
  private readonly timer: NodeJS.Timeout;
  private readonly streamers: Array<{ s: StreamerLike; fn: (a: Alert) => void }> = [];

  constructor(opts: PusherOptions) {
    if (opts.urls.length === 0) throw new Error('AlertmanagerPusher: no URL');
    const o = {
      resendMs: opts.resendMs ?? 60_000,
      queueMax: opts.queueMax ?? 1000,
      minBackoffMs: opts.minBackoffMs ?? 1000,
      maxBackoffMs: opts.maxBackoffMs ?? 60_000,
      timeoutMs: opts.timeoutMs ?? 10_000,
      batchMax: opts.batchMax ?? 100,
    };
    const log = opts.logger ?? logger('alertmanager');
    this.targets = opts.urls.map((u) => new Target(u, o, log));
    this.instance = opts.instance ?? hostname();
    this.resendMs = o.resendMs;
    this.timer = setInterval(() => this.resend(), this.resendMs);
    this.timer.unref();
  }

  /** Pushes this streamer's alerts (and the ones already firing). */
  attach(s: StreamerLike): void {
    const fn = (a: Alert): void => this.onAlert(s, a);
    s.on('alert', fn);
    this.streamers.push({ s, fn });
    for (const a of s.firing()) this.onAlert(s, a);
  }

  private onAlert(s: StreamerLike, a: Alert): void {
    const labels = amLabels(a, { instance: this.instance, netns: s.netns });
    const id = `${labels.netns ?? ''}|${a.kind}|${JSON.stringify(a.key)}`;
    const cur = this.active.get(id);
    if (a.state === 'resolved') {
      if (!cur) return;
      this.active.delete(id);
      this.send(cur.labels, { ...cur, alert: a }, a.ts);
      return;
    }
    // An escalation changes the severity label, hence the Alertmanager alert: end the old one.
    if (cur && fingerprint(cur.labels) !== fingerprint(labels)) this.send(cur.labels, cur, a.ts);
    const next: Active = { alert: a, startsAt: cur?.startsAt ?? a.ts, labels };
    this.active.set(id, next);
    this.send(labels, next, null);
  }

  /** endsAt null: firing, ends 3 re-send periods from now unless re-sent. */
  private send(labels: Record<string, string>, e: Active, endsAt: string | null): void {
    const am: AmAlert = {
      labels,
      annotations: amAnnotations(e.alert),
      startsAt: e.startsAt,
      endsAt: endsAt ?? new Date(Date.now() + 3 * this.resendMs).toISOString(),
    };
    const id = fingerprint(labels);
    for (const t of this.targets) t.push(id, am);
  }

  private resend(): void {
    for (const e of this.active.values()) this.send(e.labels, e, null);
  }

  /** natwatch_alertmanager_* series on the server's registry, read at scrape time. */
  registerMetrics(registry: Registry): void {
    const targets = this.targets;
    const counter = (name: string, help: string, pick: (t: Target) => number): void => {
      new Counter({
        name,
        help,
        labelNames: ['alertmanager'],
        registers: [registry],
        collect() {
          // Mirrors a total kept by the target: reset, then add it.
          this.reset();
          for (const t of targets) this.inc({ alertmanager: t.url }, pick(t));
        },
      });
    };
    counter('natwatch_alertmanager_alerts_sent_total', 'Alerts (firing re-sends included) accepted by each Alertmanager.', (t) => t.sent);
    counter('natwatch_alertmanager_errors_total', 'Failed POSTs to each Alertmanager (each is retried with backoff).', (t) => t.errors);
    counter('natwatch_alertmanager_dropped_total', 'Alerts dropped because the queue for an unreachable Alertmanager was full.', (t) => t.dropped);
    new Gauge({
      name: 'natwatch_alertmanager_queue_length',
      help: 'Alerts waiting to be sent to each Alertmanager.',
      labelNames: ['alertmanager'],
      registers: [registry],
      collect() {
        for (const t of targets) this.set({ alertmanager: t.url }, t.queue.size);
      },
    });
  }

  /** Tries once more to deliver what is queued (bounded by `ms`), then stops. */
  async close(ms = 2000): Promise<void> {
    clearInterval(this.timer);
    for (const { s, fn } of this.streamers.splice(0)) s.off('alert', fn);
    await Promise.race([Promise.all(this.targets.map((t) => t.flush())), new Promise((r) => setTimeout(r, ms).unref())]);
    for (const t of this.targets) t.close();
  }

  /** For tests and /metrics: per-Alertmanager counters. */
  stats(): Array<{ url: string; sent: number; errors: number; dropped: number; queued: number }> {
    return this.targets.map((t) => ({ url: t.url, sent: t.sent, errors: t.errors, dropped: t.dropped, queued: t.queue.size }));
  }
}
