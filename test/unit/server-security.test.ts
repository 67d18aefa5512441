// What a hostile client or a web page can do to the server: frames of any shape, foreign
// Origin and Host headers, too many clients, replays asked in a loop, a token changed under it.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { connect } from 'node:net';
import { pino } from 'pino';
import { startServer, type StandaloneServer, type StartOptions } from '../../src/server/index.js';
import { FakeStreamer, TestClient } from '../helpers/fake-streamer.js';

let srv: StandaloneServer | null = null;
let streamer = new FakeStreamer();
const logLines: string[] = [];
const logger = pino({ level: 'warn' }, { write: (s: string) => void logLines.push(s) });

beforeAll(() => {
  process.env.NATWATCH_LOG_LEVEL ??= 'silent';
});
afterEach(async () => {
  await srv?.close();
  srv = null;
  streamer = new FakeStreamer();
  logLines.length = 0;
});

const start = async (opts: StartOptions = {}): Promise<StandaloneServer> => (srv = await startServer(streamer, { port: 0, logger, ...opts }));
const http = (path = ''): string => `http://127.0.0.1:${srv!.address.port}${path}`;

/** One raw HTTP/1.1 exchange, so Host and Origin can be anything. */
function raw(head: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = connect(srv!.address.port, '127.0.0.1', () => sock.end(head));
    let text = '';
    sock.on('data', (d) => (text += d.toString()));
    sock.on('close', () => resolve(text));
    sock.on('error', reject);
  });
}
const get = (path: string, host: string): Promise<string> => raw(`GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
const upgradeHead = (host: string, origin?: string): string =>
  `GET /v1/stream HTTP/1.1\r\nHost: ${host}\r\n${origin ? `Origin: ${origin}\r\n` : ''}Connection: Upgrade\r\nUpgrade: websocket\r\n` +
  'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';
const status = (text: string): number => Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1]);

/** A subscribe field value: JSON of any shape, plus the values that broke String(). */
const hostile = fc.oneof(
  fc.jsonValue({ maxDepth: 4 }),
  fc.constant({ toString: 1 }),
  fc.constant({ valueOf: {}, toString: 'x' }),
  fc.constant({ __proto__: { toString: 1 } }),
  fc.constant([{ toString: 1 }]),
  fc.constant(['alert', 7]),
  fc.constant(Number.MAX_VALUE),
  fc.constant(-0),
  fc.constant(2 ** 53 + 2),
  fc.constantFrom('alert', 'stats,event', 'critical', '198.51.100.8:80', '[2001:db8::1]:443', '12', 'msgpack', ''),
);
const FIELDS = ['type', 'format', 'types', 'severity', 'dst', 'since', 'token', 'constructor', '__proto__', 'toString'] as const;
/** A whole frame: mostly subscribe messages with hostile fields, sometimes anything at all. */
const frame = fc.oneof(
  { weight: 4, arbitrary: fc.dictionary(fc.constantFrom(...FIELDS), hostile, { maxKeys: 5 }).map((o) => JSON.stringify({ type: 'subscribe', ...o })) },
  { weight: 2, arbitrary: fc.dictionary(fc.constantFrom(...FIELDS), hostile, { maxKeys: 5 }).map((o) => JSON.stringify(o)) },
  { weight: 1, arbitrary: fc.jsonValue().map((v) => JSON.stringify(v) ?? 'null') },
  { weight: 1, arbitrary: fc.constantFrom('{"type":"subscribe","since":1e400}', '{"type":"subscribe","since":-1e-400}', '{"type":"subscribe","types":' + '['.repeat(20_000) + ']'.repeat(20_000) + '}', '{"type":{"toString":1}}', '{"type":"subscribe","__proto__":{"types":"event"}}', '\u0000', '') },
);

describe('client frames never throw', () => {
  it('arbitrary JSON to the real message handler: one reply each, the connection stays', async () => {
    await start();
    const c = await TestClient.open(srv!.url);
    await c.next('hello');
    let sent = 0;
    const replies = (): number => c.received.filter((r) => r.msg.type === 'error' || r.msg.type === 'subscribed').length;
    await fc.assert(
      fc.asyncProperty(frame, async (f) => {
        // A subscribe with a valid since may answer twice (subscribed + replay refused): wait
        // for at least one reply per frame sent so far.
        c.send(f);
        sent++;
        await c.until(() => replies() >= sent, 3000);
        expect(c.closeCode).toBe(null);
      }),
      { numRuns: 300 },
    );
    // Nothing reached the last-resort catch: the type checks answered every frame themselves.
    expect(logLines.filter((l) => l.includes('client message failed'))).toEqual([]);
    c.send({ type: 'subscribe', types: 'alert', severity: null, dst: null, format: 'json' });
    await c.until(() => c.ofType('subscribed').length > 0 && c.received.at(-1)!.msg.type === 'subscribed');
    const a = streamer.emitAlert();
    expect(await c.until((r) => r.some((x) => x.msg.seq === a.seq && x.msg.type === 'alert')).then(() => true)).toBe(true);
    c.close();
  }, 60_000);

  it('the frame that ended serve ({"type":{"toString":1}}) gets an error reply', async () => {
    await start();
    const c = await TestClient.open(srv!.url);
    await c.next('hello');
    c.send('{"type":{"toString":1}}');
    c.send('{"type":"subscribe","types":{"toString":1},"dst":{"valueOf":1},"since":{"toString":1}}');
    const e1 = await c.next('error');
    const e2 = await c.next('error', 2);
    expect(e1.message).toMatch(/message type \(not a string\)/);
    expect(e2.message).toMatch(/^types: expected a comma-separated string or a list of strings, got an object$/);
    expect(c.closeCode).toBe(null);
    c.close();
  });

  it('a subscribe that arrives from a client already being closed adds no event subscription', async () => {
    await start();
    const c = await TestClient.open(srv!.url);
    await c.next('hello');
    // Close from the server side (token change), then the client asks for events before it
    // has seen the close: the request must be ignored, not leave an 'event' listener behind.
    srv!.setToken('now-required');
    c.send({ type: 'subscribe', types: 'event' });
    await c.closedP;
    await new Promise((r) => setTimeout(r, 100));
    expect(streamer.listenerCount('event')).toBe(0);
    expect(srv!.clientCount).toBe(0);
  });
});

describe('browser origins and DNS rebinding', () => {
  it('an upgrade with an unlisted Origin gets 403 before the handshake; a listed one and none are accepted', async () => {
    await start({ allowOrigins: ['https://ops.example:8443'] });
    const refused = await raw(upgradeHead('127.0.0.1', 'https://attacker.example'));
    expect(status(refused)).toBe(403);
    expect(refused).toMatch(/Origin 'https:\/\/attacker.example' is not allowed/);
    expect(status(await raw(upgradeHead('127.0.0.1', 'null')))).toBe(403);
    expect(status(await raw(upgradeHead('127.0.0.1', 'HTTPS://OPS.example:8443')))).toBe(101);
    expect(status(await raw(upgradeHead('127.0.0.1')))).toBe(101);
  });

  it('no Origin is allowed by default', async () => {
    await start();
    expect(status(await raw(upgradeHead('localhost:7600', `http://127.0.0.1:${srv!.address.port}`)))).toBe(403);
  });

  it('without a token, a Host that is not loopback or localhost gets 403 on every route and the upgrade', async () => {
    await start({ allowHosts: ['natwatch.internal'] });
    for (const path of ['/healthz', '/metrics', '/v1/alerts', '/v1/top', '/nope']) {
      const r = await get(path, 'attacker.example');
      expect(status(r), path).toBe(403);
      expect(r).toMatch(/Host 'attacker.example' is not accepted/);
      expect(status(await get(path, 'localhost.attacker.example:7600')), path).toBe(403);
      expect(status(await get(path, '127.0.0.1.nip.io')), path).toBe(403);
    }
    expect(status(await raw(upgradeHead('attacker.example:7600')))).toBe(403);
    for (const host of ['127.0.0.1', '127.0.0.1:7600', '127.9.9.9:1', 'localhost', 'LOCALHOST:80', '[::1]:7600', 'natwatch.internal:7600', 'NATWATCH.internal']) {
      expect(status(await get('/v1/alerts', host)), host).toBe(200);
    }
    expect(status(await raw(upgradeHead('natwatch.internal')))).toBe(101);
  });

  it('with a token any Host is accepted (the token is what a rebinding page lacks)', async () => {
    await start({ token: 'tok' });
    expect(status(await get('/v1/alerts?token=tok', 'natwatch.example.net'))).toBe(200);
    expect(status(await get('/v1/alerts', 'natwatch.example.net'))).toBe(401);
  });

  it('/healthz reveals only the status, and says starting/degraded with 503', async () => {
    await start();
    const body = async () => {
      const r = await fetch(http('/healthz'));
      return [r.status, await r.json()];
    };
    expect(await body()).toEqual([200, { status: 'ok' }]);
    streamer.ready = 'starting';
    expect(await body()).toEqual([503, { status: 'starting' }]);
    streamer.ready = 'degraded';
    expect(await body()).toEqual([503, { status: 'degraded' }]);
  });
});

describe('token changes', () => {
  it('closes clients that authenticated with the old token (1008); those with the new one stay', async () => {
    await start({ token: 'old' });
    const oldC = await TestClient.open(srv!.url + '?token=old');
    await oldC.next('hello');
    srv!.setToken('new');
    expect(await oldC.closedP).toBe(1008);
    const newC = await TestClient.open(srv!.url, { headers: { authorization: 'Bearer new' } });
    await newC.next('hello');
    srv!.setToken('new');
    srv!.setToken(null);
    const a = streamer.emitAlert();
    expect(await newC.next('alert')).toEqual(a);
    expect(newC.closeCode).toBe(null);
    // From no token to a token: clients that came in without one are closed too.
    const anon = await TestClient.open(srv!.url);
    await anon.next('hello');
    srv!.setToken('again');
    expect(await anon.closedP).toBe(1008);
    newC.close();
  });
});

describe('bounded under hostile load', () => {
  it('--max-clients and the per-address limit answer 503 before the upgrade', async () => {
    await start({ maxClients: 3, maxClientsPerAddress: 2 });
    const a = await TestClient.open(srv!.url);
    const b = await TestClient.open(srv!.url);
    const third = await raw(upgradeHead('127.0.0.1'));
    expect(status(third)).toBe(503);
    expect(third).toMatch(/too many clients from 127\.0\.0\.1 \(at most 2\)/);
    // Another loopback address is another remote.
    const c = await TestClient.open(srv!.url, { localAddress: '127.0.0.2' });
    const d = await new Promise<string>((resolve, reject) => {
      const sock = connect({ port: srv!.address.port, host: '127.0.0.1', localAddress: '127.0.0.3' }, () => sock.end(upgradeHead('127.0.0.1')));
      let text = '';
      sock.on('data', (x) => (text += x.toString()));
      sock.on('close', () => resolve(text));
      sock.on('error', reject);
    });
    expect(status(d)).toBe(503);
    expect(d).toMatch(/too many clients \(at most 3\)/);
    a.close();
    await a.closedP;
    await new Promise((r) => setTimeout(r, 50));
    const e = await TestClient.open(srv!.url);
    await e.next('hello');
    for (const x of [b, c, e]) x.close();
  });

  it('since replays are rate-limited per client', async () => {
    await start();
    for (let i = 0; i < 5; i++) streamer.emitAlert({ message: `m${i}` });
    const c = await TestClient.open(srv!.url + '?since=0&types=alert');
    await c.next('alert', 5);
    c.send({ type: 'subscribe', since: 0 });
    await c.next('alert', 10);
    c.send({ type: 'subscribe', since: 0 });
    const err = await c.next('error');
    expect(err.message).toMatch(/^since: replay refused, at most 2 per 10 s; retry in \d s$/);
    expect(c.ofType('alert')).toHaveLength(10);
    c.close();
  });

  it('a since older than the ring gets a gap, then every alert firing now', async () => {
    streamer = new FakeStreamer({ ringSize: 5 });
    await start();
    const firing = streamer.emitAlert({ key: { proto: 'tcp', natIp: '198.51.100.1', dstIp: '198.51.100.9', dstPort: 443 } });
    for (let i = 0; i < 8; i++) streamer.emitAlert({ state: i % 2 ? 'firing' : 'resolved' });
    // Ring holds seq 5..9; 3 and 4 are gone. Firing now: seq 1 (443) and seq 9 (80, last firing).
    const c = await TestClient.open(srv!.url + '?since=2&types=alert,gap');
    const gap = await c.next('gap');
    expect(gap).toMatchObject({ type: 'gap', dropped: 2 });
    await c.next('alert', 2);
    await new Promise((r) => setTimeout(r, 50));
    expect(c.ofType('alert').map((a) => a.seq)).toEqual([firing.seq, 9]);
    expect(c.received.map((r) => r.msg.type)).toEqual(['hello', 'gap', 'alert', 'alert']);
    // A since inside the ring is a plain replay.
    const d = await TestClient.open(srv!.url + '?since=6&types=alert,gap');
    await d.next('alert', 3);
    expect(d.ofType('alert').map((a) => a.seq)).toEqual([7, 8, 9]);
    expect(d.ofType('gap')).toEqual([]);
    c.close();
    d.close();
  });
});
