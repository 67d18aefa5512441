// Real ws clients against a real server fed by a fake streamer.
import { hostname } from 'node:os';
import { VERSION } from '../../src/version.js';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { unpack } from 'msgpackr';
import { startServer, type StandaloneServer, type StartOptions } from '../../src/server/index.js';
import { FakeStreamer, TestClient } from '../helpers/fake-streamer.js';

let streamer: FakeStreamer;
let srv: StandaloneServer;

async function start(opts: StartOptions = {}): Promise<void> {
  srv = await startServer(streamer, { port: 0, ...opts });
}

beforeAll(() => {
  process.env.NATWATCH_LOG_LEVEL ??= 'silent';
});
beforeEach(() => {
  streamer = new FakeStreamer({ netns: '/var/run/netns/nwc-test' });
});
afterEach(async () => {
  await srv?.close();
});

const url = (q = ''): string => srv.url + q;

describe('hello and formats', () => {
  it('sends hello first, then alerts and stats as JSON text frames', async () => {
    await start();
    streamer.emitAlert(); // before connect: not replayed without since
    const c = await TestClient.open(url());
    const hello = await c.next('hello');
    expect(c.received[0]!.msg.type).toBe('hello');
    expect(hello).toMatchObject({ netns: '/var/run/netns/nwc-test', seq: 1, startedAt: streamer.startedAt });
    expect(typeof hello.version).toBe('string');
    expect(typeof hello.host).toBe('string');
    const a = streamer.emitAlert({ severity: 'warning' });
    const s = streamer.emitStats();
    await c.next('stats');
    expect(c.ofType('alert')).toEqual([a]);
    expect(c.ofType('stats')).toEqual([s]);
    expect(c.received.every((r) => !r.binary)).toBe(true);
    c.close();
  });

  it('msgpack: one object per binary frame, same shape as JSON', async () => {
    await start();
    const c = await TestClient.open(url('?format=msgpack&types=alert,stats,event'));
    await c.next('hello');
    const a = streamer.emitAlert();
    const e = streamer.emitEvent();
    const s = streamer.emitStats();
    await c.next('stats');
    expect(c.received.every((r) => r.binary)).toBe(true);
    expect(c.ofType('alert')).toEqual([a]);
    expect(c.ofType('event')).toEqual([e]);
    expect(c.ofType('stats')).toEqual([s]);
    c.close();
  });

  it('ecs: every frame is an Elastic Common Schema document, control messages included', async () => {
    await start();
    const c = await TestClient.open(url('?format=ecs&types=alert,stats,event'));
    await c.until((r) => r.length >= 1);
    const hello = c.received[0]!.msg;
    expect(hello).toMatchObject({
      event: { kind: 'event', dataset: 'natwatch.control', action: 'hello' },
      host: { name: hostname() },
      observer: { hostname: hostname(), product: 'natwatch', version: VERSION },
      natwatch: { type: 'hello', seq: 0 },
    });
    expect(Date.parse(hello['@timestamp'] as string)).not.toBeNaN();
    const a = streamer.emitAlert({ severity: 'critical', drops: 7, etaSeconds: 0 });
    streamer.emitEvent();
    streamer.emitStats();
    const r = streamer.emitAlert({ state: 'resolved', severity: 'critical' });
    await c.until((r) => r.length >= 5);
    const docs = c.received.slice(1).map((r) => r.msg);
    const [alert, resolved] = docs.filter((d) => (d.event as { kind: string }).kind === 'alert');
    expect(alert).toMatchObject({
      '@timestamp': a.ts,
      event: { kind: 'alert', category: ['network'], type: ['start'], action: 'nat_port_exhaustion' },
      source: { nat: { ip: '198.51.100.1' } },
      destination: { ip: '198.51.100.8', port: 80 },
      network: { transport: 'tcp', iana_number: '6' },
      message: a.message,
      host: { name: hostname() },
      natwatch: { netns: 'nwc-test', seq: a.seq, kind: 'nat_port_exhaustion', severity: 'critical', state: 'firing', used: 10, capacity: 10, utilization: 1, drops: 7, eta_seconds: 0, key: { nat_ip: '198.51.100.1', dst_port: 80 } },
    });
    expect(typeof (alert!.event as { severity: unknown }).severity).toBe('number');
    // One episode: firing and resolved share event.id.
    expect((resolved!.event as { id: string }).id).toBe((alert!.event as { id: string }).id);
    expect(resolved).toMatchObject({ '@timestamp': r.ts, event: { type: ['end'] } });
    const metric = docs.find((d) => (d.event as { kind: string }).kind === 'metric')!;
    expect(metric).toMatchObject({ natwatch: { type: 'stats', conntrack: { count: 120 }, counters: { insert_failed: 5 } } });
    const ev = docs.find((d) => (d.event as { kind: string }).kind === 'event')!;
    expect(ev).toMatchObject({
      event: { action: 'new', type: ['connection', 'start'] },
      source: { ip: '192.0.2.5', port: 40000, nat: { ip: '198.51.100.1', port: 50000 } },
      destination: { ip: '198.51.100.8', port: 80 },
      network: { transport: 'tcp', iana_number: '6', type: 'ipv4' },
    });
    c.close();
  });

  it('every client of a format receives the same bytes', async () => {
    await start();
    const clients = await Promise.all([1, 2, 3].map(() => TestClient.open(url('?format=msgpack'))));
    await Promise.all(clients.map((c) => c.next('hello')));
    // Identity of the encoded buffer is not observable over the wire; the frames must be byte-equal.
    const frames: Buffer[][] = clients.map(() => []);
    clients.forEach((c, i) => c.ws.on('message', (d) => frames[i]!.push(d as Buffer)));
    streamer.emitAlert();
    await Promise.all(clients.map((c) => c.next('alert')));
    expect(frames[0]![0]!.equals(frames[1]![0]!)).toBe(true);
    expect(unpack(frames[2]![0]!)).toMatchObject({ type: 'alert', seq: 1 });
    clients.forEach((c) => c.close());
  });
});

describe('filters', () => {
  it('types, severity and dst from the query', async () => {
    await start();
    const crit = await TestClient.open(url('?types=alert&severity=critical'));
    const dst = await TestClient.open(url('?types=alert,event&dst=203.0.113.9:443'));
    await crit.next('hello');
    await dst.next('hello');
    streamer.emitAlert({ severity: 'warning' });
    const c1 = streamer.emitAlert({ severity: 'critical' });
    const other = streamer.emitAlert({ severity: 'warning', key: { proto: 'tcp', natIp: '198.51.100.1', dstIp: '203.0.113.9', dstPort: 443 } });
    streamer.emitAlert({ key: { proto: 'tcp', natIp: '198.51.100.1', dstIp: '203.0.113.9', dstPort: 80 } });
    const table = streamer.emitAlert({ kind: 'conntrack_table_full', key: {}, used: 100, capacity: 100 });
    streamer.emitStats();
    streamer.emitEvent();
    const ev = streamer.emitEvent({ orig: { src: '192.0.2.5', dst: '203.0.113.9', sport: 1, dport: 443 } });
    await crit.until((r) => r.some((x) => x.msg.seq === table.seq));
    await dst.until((r) => r.some((x) => x.msg.type === 'event'));
    expect(crit.ofType('alert').map((a) => a.seq)).toEqual([c1.seq, 4, table.seq]);
    expect(crit.ofType('stats')).toEqual([]);
    // host-wide alerts (no destination) reach every dst filter
    expect(dst.ofType('alert').map((a) => a.seq)).toEqual([other.seq, table.seq]);
    expect(dst.ofType('event')).toEqual([ev]);
    crit.close();
    dst.close();
  });

  it('subscribe changes the filter live and is acknowledged', async () => {
    await start();
    const c = await TestClient.open(url('?types=alert'));
    await c.next('hello');
    streamer.emitStats();
    c.send({ type: 'subscribe', types: ['stats'], dst: '198.51.100.8' });
    const ack = await c.next('subscribed');
    expect(ack).toMatchObject({ types: ['stats'], dst: '198.51.100.8', format: 'json' });
    streamer.emitAlert();
    const s = streamer.emitStats();
    await c.next('stats');
    expect(c.ofType('stats')).toEqual([s]);
    expect(c.ofType('alert')).toEqual([]);
    c.send({ type: 'subscribe', types: 'alert', severity: 'bogus' });
    expect((await c.next('error')).message).toMatch(/severity/);
    c.close();
  });

  it('bad query values are refused with HTTP 400 before the upgrade', async () => {
    await start();
    for (const q of ['?types=alert,nope', '?severity=high', '?dst=not-an-ip', '?since=-1', '?format=xml', '?dst=198.51.100.8:99999']) {
      await expect(TestClient.open(url(q))).rejects.toThrow('HTTP 400');
    }
    const c = await TestClient.open(url());
    await c.next('hello');
    c.close();
  });

  it('an upgrade on another path is answered 404', async () => {
    await start();
    await expect(TestClient.open(`ws://127.0.0.1:${srv.address.port}/v2/other`)).rejects.toThrow('HTTP 404');
  });
});

describe('event listener', () => {
  it("listens to the streamer's events only while a client wants them", async () => {
    await start();
    const a = await TestClient.open(url());
    await a.next('hello');
    expect(streamer.listenerCount('event')).toBe(0);
    const b = await TestClient.open(url('?types=event'));
    await b.next('hello');
    const c = await TestClient.open(url('?types=alert,event'));
    await c.next('hello');
    expect(streamer.listenerCount('event')).toBe(1);
    b.send({ type: 'subscribe', types: 'alert' });
    await b.next('subscribed');
    expect(streamer.listenerCount('event')).toBe(1);
    c.close();
    await c.closedP;
    await new Promise((r) => setTimeout(r, 50));
    expect(streamer.listenerCount('event')).toBe(0);
    a.send({ type: 'subscribe', types: ['event'] });
    await a.next('subscribed');
    const e = streamer.emitEvent();
    expect(await a.next('event')).toEqual(e);
    a.close();
    b.close();
  });
});

describe('since replay', () => {
  it('replays alerts with seq > since before live ones, filtered', async () => {
    await start();
    for (let i = 0; i < 5; i++) streamer.emitAlert({ severity: i % 2 ? 'critical' : 'warning' });
    const c = await TestClient.open(url('?since=2'));
    await c.next('alert', 3);
    const live = streamer.emitAlert();
    await c.next('alert', 4);
    expect(c.ofType('alert').map((a) => a.seq)).toEqual([3, 4, 5, live.seq]);
    expect(c.received[0]!.msg.type).toBe('hello');
    const crit = await TestClient.open(url('?since=0&severity=critical'));
    await crit.next('alert', 3);
    expect(crit.ofType('alert').map((a) => a.seq)).toEqual([2, 4, 6]);
    c.close();
    crit.close();
  });
});

describe('robustness', () => {
  it('malformed JSON and unknown types get an error reply; the server keeps serving', async () => {
    await start();
    const c = await TestClient.open(url());
    await c.next('hello');
    c.send('{not json');
    c.send({ type: 'frobnicate' });
    c.send('[1,2]');
    await c.next('error', 3);
    const errs = c.ofType('error').map((e) => e.message);
    expect(errs[0]).toMatch(/malformed JSON/);
    expect(errs[1]).toMatch(/unknown message type \('frobnicate'\)/);
    const a = streamer.emitAlert();
    expect(await c.next('alert')).toEqual(a);
    c.close();
  });

  it('an oversized frame closes that client with 1009; others are served', async () => {
    await start({ maxPayload: 1024 });
    const big = await TestClient.open(url());
    const ok = await TestClient.open(url());
    await big.next('hello');
    await ok.next('hello');
    big.ws.send('x'.repeat(4096));
    expect(await big.closedP).toBe(1009);
    const a = streamer.emitAlert();
    expect(await ok.next('alert')).toEqual(a);
    ok.close();
  });

  it('a client that does not answer pings is terminated', async () => {
    await start({ heartbeatMs: 100 });
    const mute = await TestClient.open(url(), { autoPong: false });
    const fine = await TestClient.open(url());
    await mute.closedP;
    expect(mute.closeCode).toBe(1006);
    expect(fine.closeCode).toBe(null);
    expect(srv.clientCount).toBe(1);
    fine.close();
  });
});

describe('backpressure', () => {
  const payload = 'p'.repeat(8000);

  it('a slow client gets a gap while a fast one gets every event', async () => {
    await start({ highWaterMark: 64 * 1024, hardLimit: 256 * 1024 * 1024 });
    const slow = await TestClient.open(url('?types=event,gap,alert'));
    const fast = await TestClient.open(url('?types=event,gap,alert'));
    await slow.next('hello');
    await fast.next('hello');
    const raw = (slow.ws as unknown as { _socket: import('node:net').Socket })._socket;
    raw.pause();
    // Emit until the server has skipped something for the slow client (bounded).
    let sent = 0;
    const dropped = (): number => srv.clients().reduce((n, c) => n + c.dropped, 0);
    while (dropped() === 0 && sent < 20_000) {
      for (let i = 0; i < 100; i++) streamer.emitEvent({ id: ++sent, mark: 0, state: payload });
      await new Promise((r) => setImmediate(r));
    }
    expect(dropped()).toBeGreaterThan(0);
    const a = streamer.emitAlert(); // alerts are never skipped
    raw.resume();
    await fast.next('alert', 1, 10_000);
    expect(fast.ofType('event').length).toBe(sent);
    expect(fast.ofType('gap')).toEqual([]);
    // The slow client: its backlog arrives, then a gap once the buffer drained, then the alert.
    await slow.next('alert', 1, 10_000);
    streamer.emitEvent({ id: ++sent });
    const gap = await slow.next('gap', 1, 10_000);
    const got = slow.ofType('event').length;
    expect(gap.dropped).toBeGreaterThan(0);
    expect(got + (gap.dropped as number)).toBe(sent);
    expect(slow.ofType('alert')).toEqual([a]);
    const metrics = await (await fetch(`http://127.0.0.1:${srv.address.port}/metrics`)).text();
    expect(metrics).toMatch(/natwatch_ws_dropped_total \d+/);
    slow.close();
    fast.close();
  });

  it('a client that cannot take alerts is terminated at once (its backlog freed)', async () => {
    await start({ highWaterMark: 16 * 1024, hardLimit: 64 * 1024 });
    const slow = await TestClient.open(url());
    const fast = await TestClient.open(url());
    await slow.next('hello');
    await fast.next('hello');
    const raw = (slow.ws as unknown as { _socket: import('node:net').Socket })._socket;
    raw.pause();
    let n = 0;
    while (srv.clientCount === 2 && n < 20_000) {
      for (let i = 0; i < 50; i++, n++) streamer.emitAlert({ message: payload });
      await new Promise((r) => setImmediate(r));
    }
    expect(srv.clientCount).toBe(1);
    raw.resume();
    // The socket is destroyed at once rather than after a close handshake queued behind
    // megabytes it never read: the client sees the connection drop.
    expect([1006, 1013]).toContain(await slow.closedP);
    await fast.next('alert', n, 10_000);
    expect(fast.closeCode).toBe(null);
    fast.close();
  });
});

describe('shutdown', () => {
  it('close() sends 1001 to clients', async () => {
    await start();
    const c = await TestClient.open(url());
    await c.next('hello');
    await srv.close();
    expect(await c.closedP).toBe(1001);
  });
});

