// Token, TLS, HTTP endpoints and embedding into an existing http.Server.
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type AddressInfo } from 'node:net';
import { attachServer, startServer, type NatwatchServer, type StandaloneServer } from '../../src/server/index.js';
import { FakeStreamer, TestClient } from '../helpers/fake-streamer.js';

let srv: StandaloneServer | null = null;
const streamer = new FakeStreamer();
beforeAll(() => {
  process.env.NATWATCH_LOG_LEVEL ??= 'silent';
});
afterEach(async () => {
  await srv?.close();
  srv = null;
});

const base = (): string => `http://127.0.0.1:${srv!.address.port}`;

describe('token', () => {
  it('accepts the token as a Bearer header or query, refuses otherwise with 401', async () => {
    srv = await startServer(streamer, { port: 0, token: 's3cret-token' });
    const h = await TestClient.open(srv.url, { headers: { authorization: 'Bearer s3cret-token' } });
    await h.next('hello');
    const q = await TestClient.open(srv.url + '?token=s3cret-token');
    await q.next('hello');
    await expect(TestClient.open(srv.url)).rejects.toThrow('HTTP 401');
    await expect(TestClient.open(srv.url + '?token=s3cret-tokex')).rejects.toThrow('HTTP 401');
    await expect(TestClient.open(srv.url, { headers: { authorization: 'Bearer s3cret' } })).rejects.toThrow('HTTP 401');
    h.close();
    q.close();
  });

  it('guards the HTTP endpoints except /healthz', async () => {
    srv = await startServer(streamer, { port: 0, token: 'tok' });
    expect((await fetch(base() + '/healthz')).status).toBe(200);
    for (const p of ['/metrics', '/v1/alerts', '/v1/top']) {
      expect((await fetch(base() + p)).status).toBe(401);
      expect((await fetch(base() + p, { headers: { authorization: 'Bearer tok' } })).status).toBe(200);
      expect((await fetch(base() + p + '?token=tok')).status).toBe(200);
    }
  });

  it('setToken replaces the token live', async () => {
    srv = await startServer(streamer, { port: 0, token: 'old' });
    srv.setToken('new');
    expect((await fetch(base() + '/v1/top?token=old')).status).toBe(401);
    expect((await fetch(base() + '/v1/top?token=new')).status).toBe(200);
  });

  it('startServer also takes { streamer, ...options }', async () => {
    srv = await startServer({ streamer, port: 0, token: 'x' });
    expect((await fetch(base() + '/v1/top?token=x')).status).toBe(200);
  });

  it('refuses a non-loopback listen without a token', async () => {
    await expect(startServer(streamer, { host: '0.0.0.0', port: 0 })).rejects.toThrow(/--listen.*--token/);
  });
});

describe('HTTP endpoints', () => {
  it('/healthz, /v1/alerts, /v1/top, 404 and 405', async () => {
    const s = new FakeStreamer({ netns: '/var/run/netns/nwc-x' });
    srv = await startServer(s, { port: 0 });
    s.topEntries = [{ netns: null, key: { proto: 'tcp', natIp: '198.51.100.1', dstIp: '198.51.100.8', dstPort: 80 }, used: 7, capacity: 10, utilization: 0.7, newPerSec: 2 }];
    const firing = s.emitAlert({ netns: null, key: { proto: 'udp', natIp: '198.51.100.1', dstIp: '198.51.100.9', dstPort: 53 } });
    s.emitAlert({ state: 'resolved' });
    s.emitStats();
    const health = await fetch(base() + '/healthz');
    expect(health.status).toBe(200);
    // Only the status: no version, namespace or counts without a token.
    expect(await health.json()).toEqual({ status: 'ok' });
    expect(await (await fetch(base() + '/v1/alerts')).json()).toEqual([firing]);
    expect(await (await fetch(base() + '/v1/top')).json()).toEqual(s.topEntries);
    expect((await fetch(base() + '/nope')).status).toBe(404);
    expect((await fetch(base() + '/v1/alerts', { method: 'POST' })).status).toBe(405);
  });

  it('a request target the URL parser rejects (GET //) is a 404, not a crash, for requests and upgrades', async () => {
    srv = await startServer(streamer, { port: 0 });
    const raw = (head: string): Promise<string> =>
      new Promise((resolve, reject) => {
        const sock = connect(srv!.address.port, '127.0.0.1', () => sock.end(head));
        let text = '';
        sock.on('data', (d) => (text += d.toString()));
        sock.on('close', () => resolve(text));
        sock.on('error', reject);
      });
    expect(await raw('GET // HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n')).toMatch(/^HTTP\/1\.1 404 /);
    const upgrade = 'GET // HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';
    expect(await raw(upgrade)).toMatch(/^HTTP\/1\.1 404 /);
    expect((await fetch(base() + '/healthz')).status).toBe(200);
  });

  it('/metrics is Prometheus text with the contract series', async () => {
    const s = new FakeStreamer();
    srv = await startServer(s, { port: 0 });
    s.topEntries = [{ netns: null, key: { proto: 'tcp', natIp: '198.51.100.1', dstIp: '198.51.100.8', dstPort: 80 }, used: 7, capacity: 10, utilization: 0.7, newPerSec: 2 }];
    s.emitAlert();
    s.emitAlert({ kind: 'conntrack_table_full', key: {} });
    s.emitEvent();
    s.emitEvent();
    s.lost.nflog = 3;
    s.emitStats({ conntrack: { count: 4242, max: 65536, buckets: 16384 } });
    const c = await TestClient.open(srv.url);
    await c.next('hello');
    const res = await fetch(base() + '/metrics');
    expect(res.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await res.text();
    const samples = parseProm(text);
    expect(samples.types.get('natwatch_events_received_total')).toBe('counter');
    expect(samples.types.get('natwatch_conntrack_entries')).toBe('gauge');
    expect(samples.values.get('natwatch_events_received_total{source="conntrack"}')).toBe(2);
    expect(samples.values.get('natwatch_events_received_total{source="nflog"}')).toBe(0);
    expect(samples.values.get('natwatch_events_lost_total{source="nflog"}')).toBe(3);
    expect(samples.values.get('natwatch_conntrack_entries')).toBe(4242);
    expect(samples.values.get('natwatch_conntrack_entries_limit')).toBe(65536);
    expect(samples.values.get('natwatch_conntrack_insert_failed_total')).toBe(5);
    expect(samples.values.get('natwatch_alerts_firing{kind="nat_port_exhaustion",severity="critical"}')).toBe(1);
    expect(samples.values.get('natwatch_alerts_firing{kind="conntrack_table_full",severity="critical"}')).toBe(1);
    expect(samples.values.get('natwatch_alerts_firing{kind="event_loss",severity="warning"}')).toBe(0);
    expect(samples.values.get('natwatch_nat_ports_utilization_ratio{proto="tcp",nat_ip="198.51.100.1",dst_ip="198.51.100.8",dst_port="80"}')).toBe(0.7);
    expect(samples.values.get('natwatch_ws_clients')).toBe(1);
    c.close();
  });
});

describe('TLS', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'nwc-tls-'));
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('serves wss:// and https:// with the given certificate', async () => {
    const cert = readFileSync(join(dir, 'cert.pem'));
    srv = await startServer(streamer, { port: 0, tls: { cert, key: readFileSync(join(dir, 'key.pem')) }, token: 't' });
    expect(srv.url).toMatch(/^wss:\/\//);
    const c = await TestClient.open(srv.url + '?token=t', { ca: cert });
    expect(await c.next('hello')).toMatchObject({ type: 'hello' });
    await expect(TestClient.open(srv.url + '?token=t')).rejects.toThrow(/self-signed|certificate/);
    const body = await new Promise<string>((resolve, reject) => {
      httpsRequest(`https://127.0.0.1:${srv!.address.port}/healthz`, { ca: cert }, (res) => {
        let b = '';
        res.on('data', (d) => (b += d));
        res.on('end', () => resolve(b));
      }).on('error', reject).end();
    });
    expect(JSON.parse(body)).toEqual({ status: 'ok' });
    c.close();
  });
});

describe('attachServer', () => {
  let http: Server;
  let nw: NatwatchServer;
  afterEach(async () => {
    await nw.close();
    await new Promise((r) => http.close(r));
  });

  it('embeds into an existing http.Server next to its own routes and upgrades', async () => {
    http = createServer((req, res) => {
      if (nw.handleRequest(req, res)) return;
      res.end('app');
    });
    nw = attachServer(http, streamer, { path: '/natwatch' });
    await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
    const port = (http.address() as AddressInfo).port;
    expect(await (await fetch(`http://127.0.0.1:${port}/other`)).text()).toBe('app');
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    const c = await TestClient.open(`ws://127.0.0.1:${port}/natwatch`);
    await c.next('hello');
    const a = streamer.emitAlert();
    expect(await c.next('alert')).toEqual(a);
    await nw.close();
    expect(await c.closedP).toBe(1001);
  });
});

/** Minimal Prometheus text parser: every non-comment line must be `name{labels} value`. */
function parseProm(text: string): { types: Map<string, string>; values: Map<string, number> } {
  const types = new Map<string, string>();
  const values = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const t = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (t) {
      types.set(t[1]!, t[2]!);
      continue;
    }
    if (line.startsWith('# HELP ')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (-?[0-9.e+-]+|NaN|Nan|[+-]Inf)$/.exec(line);
    if (!m) throw new Error(`not Prometheus text: ${line}`);
    values.set(m[1]!, Number(m[2]));
  }
  return { types, values };
}
