// The Alertmanager pusher against a local HTTP receiver that records POST /api/v2/alerts:
// labels and annotations, startsAt/endsAt timing, re-sends, resolve, escalation, retries with
// backoff through an outage (logged once), and the bounded queue. The real Alertmanager is in
// test/live/e2e-alertmanager.test.ts.
import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import { pino } from 'pino';
import type { Logger } from '../../src/log.js';
import { Registry } from 'prom-client';
import { AlertmanagerPusher } from '../../src/alertmanager/pusher.js';
import type { AmAlert } from '../../src/alertmanager/payload.js';
import { resolveSettings } from '../../src/cli/serve-config.js';
import { FakeStreamer } from '../helpers/fake-streamer.js';

interface Receiver {
  url: string;
  posts: AmAlert[][];
  /** Answer this status to the next n POSTs. */
  failNext(n: number, status?: number): void;
  close(): Promise<void>;
}

async function receiver(): Promise<Receiver> {
  const posts: AmAlert[][] = [];
  let fail = { n: 0, status: 503 };
  const srv: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/api/v2/alerts') return void res.writeHead(404).end();
      if (fail.n > 0) {
        fail.n--;
        return void res.writeHead(fail.status).end('down for maintenance');
      }
      posts.push(JSON.parse(body) as AmAlert[]);
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`,
    posts,
    failNext: (n, status = 503) => (fail = { n, status }),
    close: () => new Promise((r) => srv.close(() => r())),
  };
}

const until = async (pred: () => boolean, ms = 5000): Promise<void> => {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
};

function capturingLogger(): { logger: Logger; lines: Array<{ level: number; msg: string }> } {
  const lines: Array<{ level: number; msg: string }> = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as { level: number; msg: string }) });
  return { logger: logger as unknown as Logger, lines };
}

let cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const f of cleanup.reverse()) await f();
  cleanup = [];
});

describe('AlertmanagerPusher', () => {
  it('firing: labels, annotations, startsAt = fire time, re-sent with endsAt 3 periods ahead; resolved once', async () => {
    const am = await receiver();
    cleanup.push(() => am.close());
    const s = new FakeStreamer({ netns: '/var/run/netns/gw-a' });
    const p = new AlertmanagerPusher({ urls: [am.url + '/'], resendMs: 1000, instance: 'gw-1' });
    cleanup.push(() => p.close());
    p.attach(s);
    const fired = s.emitAlert({ severity: 'critical', used: 10, capacity: 10, drops: 4, etaSeconds: 12.4 });
    await until(() => am.posts.length >= 1);
    const first = am.posts[0]![0]!;
    expect(first.labels).toEqual({
      alertname: 'NatPortExhaustion',
      kind: 'nat_port_exhaustion',
      severity: 'critical',
      instance: 'gw-1',
      netns: 'gw-a',
      proto: 'tcp',
      nat_ip: '198.51.100.1',
      dst_ip: '198.51.100.8',
      dst_port: '80',
    });
    expect(first.annotations).toEqual({ summary: fired.message, used: '10', capacity: '10', drops: '4', eta_seconds: '12' });
    expect(first.startsAt).toBe(fired.ts);
    const ahead = Date.parse(first.endsAt) - Date.now();
    // 3 periods ahead of when it was sent (the test may run late on a busy machine).
    expect(ahead).toBeGreaterThan(1500);
    expect(ahead).toBeLessThanOrEqual(3000);
    // Re-sent every period while firing, still with the fire time as startsAt.
    await until(() => am.posts.length >= 3, 6000);
    expect(am.posts[2]![0]!.startsAt).toBe(fired.ts);
    expect(am.posts[2]![0]!.labels).toEqual(first.labels);
    const resolved = s.emitAlert({ state: 'resolved', severity: 'critical' });
    await until(() => am.posts.some((b) => b.some((a) => a.endsAt === resolved.ts)));
    const n = am.posts.length;
    await new Promise((r) => setTimeout(r, 1500));
    // Resolved is sent once and never re-sent (a re-send period has passed).
    expect(am.posts.slice(n).flat()).toEqual([]);
    const last = am.posts.flat().at(-1)!;
    expect(last).toMatchObject({ startsAt: fired.ts, endsAt: resolved.ts, labels: first.labels });
  });

  it('own namespace: no netns label; instance defaults to the host name; table kinds have no key labels', async () => {
    const am = await receiver();
    cleanup.push(() => am.close());
    const s = new FakeStreamer();
    const p = new AlertmanagerPusher({ urls: [am.url] });
    cleanup.push(() => p.close());
    p.attach(s);
    s.emitAlert({ kind: 'conntrack_table_full', key: {}, severity: 'warning', used: 900, capacity: 1000 });
    s.emitAlert({ kind: 'nflog_drop', key: { prefix: 'blocked-9999 ', group: 5, proto: 'tcp', dstIp: '198.51.100.8', dstPort: 9999 }, used: null, capacity: null, drops: 3 });
    await until(() => am.posts.flat().length >= 2);
    const [table, nflog] = am.posts.flat();
    expect(table!.labels).toEqual({ alertname: 'ConntrackTableFull', kind: 'conntrack_table_full', severity: 'warning', instance: hostname() });
    expect(nflog!.labels).toMatchObject({ alertname: 'NflogDrop', prefix: 'blocked-9999', group: '5', dst_port: '9999' });
    expect(nflog!.annotations).toEqual({ summary: expect.any(String), drops: '3' });
  });

  it('an escalation ends the warning alert in Alertmanager and starts the critical one', async () => {
    const am = await receiver();
    cleanup.push(() => am.close());
    const s = new FakeStreamer();
    const p = new AlertmanagerPusher({ urls: [am.url] });
    cleanup.push(() => p.close());
    p.attach(s);
    const warn = s.emitAlert({ severity: 'warning', used: 8 });
    await until(() => am.posts.length >= 1);
    const crit = s.emitAlert({ severity: 'critical', used: 10 });
    await until(() => am.posts.flat().length >= 3);
    const later = am.posts.slice(1).flat();
    expect(later.find((a) => a.labels.severity === 'warning')).toMatchObject({ endsAt: crit.ts, startsAt: warn.ts });
    expect(later.find((a) => a.labels.severity === 'critical')).toMatchObject({ startsAt: warn.ts });
  });

  it('an outage: retried with backoff, counted, logged once; delivered after it; the queue is bounded', async () => {
    const am = await receiver();
    cleanup.push(() => am.close());
    const { logger, lines } = capturingLogger();
    const s = new FakeStreamer();
    const p = new AlertmanagerPusher({ urls: [am.url], minBackoffMs: 50, maxBackoffMs: 200, queueMax: 2, logger });
    cleanup.push(() => p.close());
    const registry = new Registry();
    p.registerMetrics(registry);
    am.failNext(4);
    p.attach(s);
    s.emitAlert({ key: { proto: 'tcp', natIp: '198.51.100.1', dstIp: '198.51.100.8', dstPort: 80 } });
    s.emitAlert({ key: { proto: 'tcp', natIp: '198.51.100.1', dstIp: '198.51.100.8', dstPort: 81 } });
    s.emitAlert({ key: { proto: 'tcp', natIp: '198.51.100.1', dstIp: '198.51.100.8', dstPort: 82 } });
    // The receiver records a post before the pusher has read its response and counted it.
    await until(() => am.posts.length >= 1 && p.stats()[0]!.sent >= 2);
    const st = p.stats()[0]!;
    expect(st).toMatchObject({ errors: 4, dropped: 1, queued: 0, sent: 2 });
    // The oldest was dropped; the two newest arrived.
    expect(am.posts.flat().map((a) => a.labels.dst_port).sort()).toEqual(['81', '82']);
    expect(lines.filter((l) => l.msg.startsWith('alertmanager unreachable'))).toHaveLength(1);
    expect(lines.filter((l) => l.msg === 'alertmanager reachable again')).toHaveLength(1);
    const text = await registry.metrics();
    expect(text).toContain(`natwatch_alertmanager_errors_total{alertmanager="${am.url}"} 4`);
    expect(text).toContain(`natwatch_alertmanager_dropped_total{alertmanager="${am.url}"} 1`);
    expect(text).toContain(`natwatch_alertmanager_alerts_sent_total{alertmanager="${am.url}"} 2`);
  });

  it('an unreachable Alertmanager does not throw and is counted', async () => {
    const am = await receiver();
    const url = am.url;
    await am.close(); // nothing listens there now
    const { logger } = capturingLogger();
    const s = new FakeStreamer();
    const p = new AlertmanagerPusher({ urls: [url], minBackoffMs: 20, maxBackoffMs: 40, logger });
    cleanup.push(() => p.close(50));
    p.attach(s);
    s.emitAlert();
    await until(() => p.stats()[0]!.errors >= 2);
    expect(p.stats()[0]!.queued).toBe(1);
  });
});

describe('serve settings: alertmanagers, instance', () => {
  it('flags (repeatable) or the config file; bad URLs are usage errors naming the flag', () => {
    expect(resolveSettings({ alertmanagers: ['http://am1:9093', 'https://am2:9093'] }, {}).alertmanagers).toEqual(['http://am1:9093', 'https://am2:9093']);
    expect(resolveSettings({}, { alertmanagers: ['http://am:9093'], instance: 'gw-7' })).toMatchObject({ alertmanagers: ['http://am:9093'], instance: 'gw-7' });
    expect(resolveSettings({}, {})).toMatchObject({ alertmanagers: [], instance: null });
    expect(() => resolveSettings({ alertmanagers: ['am:9093'] }, {})).toThrow("--alertmanager: 'am:9093' is not an http:// or https:// URL");
    expect(() => resolveSettings({ instance: ' ' }, {})).toThrow('--instance: empty');
  });
});
