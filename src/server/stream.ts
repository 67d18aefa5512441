// The WebSocket side: upgrade checks (path, Host, Origin, token, client limits, query) before
// any handshake, the `hello`, `since` replay, live subscribe, heartbeats, and fan-out of the
// streamer's messages.
import { hostname } from 'node:os';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';
import type { Alert, StatsMessage, StreamerLike, WireEvent } from '../types.js';
import { VERSION } from '../version.js';
import type { Logger } from '../log.js';
import { alertMatches, describeSubscription, FilterError, parseSubscription, type Subscription } from './filter.js';
import { FrameCache } from './encode.js';
import { ecsContext, type EcsContext } from './ecs.js';
import { CLOSE_POLICY_VIOLATION, CLOSE_TRY_AGAIN_LATER, REPLAY_BURST, REPLAY_REFILL_MS, StreamClient, type BackpressureLimits } from './client.js';
import type { AccessPolicy } from './auth.js';
import { requestUrl } from './http.js';

export interface StreamOptions extends BackpressureLimits {
  path: string;
  maxPayload: number;
  heartbeatMs: number;
  /** Connected clients at most; past it an upgrade gets 503. */
  maxClients: number;
  /** Connected clients per remote address at most; past it an upgrade gets 503. */
  maxClientsPerAddress: number;
}

export class StreamHub {
  readonly clients = new Set<StreamClient>();
  slowClosed = 0;
  droppedByGone = 0;
  private readonly wss: WebSocketServer;
  private nextId = 1;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly perAddress = new Map<string, number>();
  /** Upgrades accepted but not yet through the handshake: they count against the limits. */
  private pending = 0;
  private readonly onAlert = (a: Alert): void => this.broadcast(new FrameCache({ type: 'alert', msg: a }, this.ecs));
  private readonly onStats = (s: StatsMessage): void => this.broadcast(new FrameCache({ type: 'stats', msg: s }, this.ecs));
  private readonly onEvent = (e: WireEvent): void => this.broadcast(new FrameCache({ type: 'event', msg: e }, this.ecs));
  /**
   * Clients that asked for events. The 'event' listener is attached only while this is > 0:
   * the streamer builds event objects only when someone listens (high volume otherwise free).
   */
  private eventSubscribers = 0;
  /** Held while eventSubscribers > 0: the streamer receives conntrack UPDATEs only then. */
  private releaseEvents: (() => void) | null = null;
  /** Gateway, namespace, NFLOG verdicts and alert episode ids for the `ecs` format. */
  private readonly ecs: EcsContext;

  constructor(
    private readonly streamer: StreamerLike,
    private readonly opts: StreamOptions,
    private readonly access: AccessPolicy,
    private readonly log: Logger,
  ) {
    this.ecs = ecsContext({ netns: streamer.netns, nflogDenies: streamer.nflogDenies?.bind(streamer) });
    this.wss = new WebSocketServer({ noServer: true, maxPayload: opts.maxPayload, perMessageDeflate: false, clientTracking: false });
    streamer.on('alert', this.onAlert);
    streamer.on('stats', this.onStats);
    this.heartbeat = setInterval(() => this.beat(), opts.heartbeatMs);
    this.heartbeat.unref();
  }

  /**
   * Handles an HTTP upgrade; returns false when the path is not ours (left to the host app).
   * Every refusal is an HTTP answer before the handshake: Host and Origin (403), token (401),
   * client limits (503), subscription (400).
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const url = requestUrl(req);
    if (url === null || url.pathname !== this.opts.path) return false;
    socket.on('error', () => socket.destroy());
    const refused = this.access.hostRefusal(req) ?? this.access.originRefusal(req);
    if (refused !== null) return reject(socket, 403, refused);
    const token = this.access.token;
    const auth = token.presentedDigest(req, url);
    if (!token.matches(auth)) return reject(socket, 401, 'missing or wrong token');
    const remote = req.socket.remoteAddress ?? '';
    if (this.clients.size + this.pending >= this.opts.maxClients) {
      this.log.warn({ remote, max: this.opts.maxClients }, 'refused a client: too many clients');
      return reject(socket, 503, `too many clients (at most ${this.opts.maxClients})`);
    }
    if ((this.perAddress.get(remote) ?? 0) >= this.opts.maxClientsPerAddress) {
      this.log.warn({ remote, max: this.opts.maxClientsPerAddress }, 'refused a client: too many clients from one address');
      return reject(socket, 503, `too many clients from ${remote} (at most ${this.opts.maxClientsPerAddress})`);
    }
    let sub: Subscription;
    try {
      sub = parseSubscription(Object.fromEntries(url.searchParams));
    } catch (err) {
      return reject(socket, 400, (err as Error).message);
    }
    this.countAddress(remote, +1);
    this.pending++;
    let settled = false;
    const settle = (): void => {
      if (settled) return;
      settled = true;
      this.pending--;
    };
    // A handshake that fails (bad key, socket gone) never calls back: give the slot back.
    socket.once('close', () => {
      if (!settled) this.countAddress(remote, -1);
      settle();
    });
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      settle();
      this.accept(ws, req, sub, auth, remote);
    });
    return true;
  }

  /** A token change: clients that authenticated with another token are closed (1008). */
  revalidate(): void {
    for (const c of [...this.clients]) {
      if (this.access.token.matches(c.auth)) continue;
      this.log.info({ client: c.id }, 'token changed: closing 1008');
      this.forget(c);
      c.close(CLOSE_POLICY_VIOLATION, 'token changed');
    }
  }

  private countAddress(remote: string, delta: 1 | -1): void {
    const n = (this.perAddress.get(remote) ?? 0) + delta;
    if (n <= 0) this.perAddress.delete(remote);
    else this.perAddress.set(remote, n);
  }

  private accept(ws: WebSocket, req: IncomingMessage, sub: Subscription, auth: Buffer | null, remote: string): void {
    const client = new StreamClient(this.nextId++, ws, sub, this.opts, (c) => this.closeSlow(c), auth, remote);
    client.ecs = this.ecs;
    this.clients.add(client);
    if (sub.filter.types.has('event')) this.countEventSubscriber(+1);
    const log = this.log.child({ client: client.id });
    log.info({ remote, ...describeSubscription(sub), since: sub.since }, 'client connected');

    ws.on('pong', () => (client.alive = true));
    ws.on('message', (data) => this.handleMessage(client, data));
    ws.on('error', (err) => log.warn({ err: err.message }, 'client socket error'));
    ws.on('close', (code) => {
      this.forget(client);
      this.countAddress(remote, -1);
      client.closed = true;
      log.info({ code, sent: client.sent, dropped: client.droppedTotal }, 'client disconnected');
    });

    client.sendControl({
      type: 'hello',
      version: VERSION,
      host: hostname(),
      netns: this.streamer.netns,
      startedAt: this.streamer.startedAt,
      seq: this.streamer.seq,
      ...nflogField(this.streamer.nflogGroups()),
    });
    if (sub.since !== null) this.replay(client, sub.since);
  }

  /**
   * Alerts after `since` from the ring. Rate-limited per client (REPLAY_BURST, then one per
   * REPLAY_REFILL_MS) and stopped when the client goes over the hard limit. A `since` older
   * than the ring holds gets a `gap` and then every alert firing now, so nothing firing is lost.
   */
  private replay(client: StreamClient, since: number): void {
    const waitMs = client.takeReplay();
    if (waitMs > 0) {
      client.sendControl({ type: 'error', message: `since: replay refused, at most ${REPLAY_BURST} per ${(REPLAY_BURST * REPLAY_REFILL_MS) / 1000} s; retry in ${Math.ceil(waitMs / 1000)} s` });
      return;
    }
    const f = client.sub.filter;
    const ring = this.streamer.alertsSince(since);
    const seq = this.streamer.seq;
    const firstHeld = ring.length > 0 ? ring[0]!.seq : seq + 1;
    let list = ring;
    if (since < seq && firstHeld > since + 1) {
      const dropped = firstHeld - since - 1;
      if (f.types.has('gap')) client.sendControl({ type: 'gap', dropped, reason: `since=${since} is older than the replay ring (oldest held: ${firstHeld}); sending the alerts firing now` });
      list = this.streamer.firing().sort((a, b) => a.seq - b.seq);
    }
    for (const a of list) {
      if (alertMatches(f, a) && !client.deliverReplay(new FrameCache({ type: 'alert', msg: a }, this.ecs))) return;
    }
  }

  /**
   * One client frame. Never throws: anything unexpected is answered with an `error` message and
   * the connection stays (the catch is the last line of defence behind the type checks).
   */
  handleMessage(client: StreamClient, data: RawData): void {
    // A frame that arrives after the client was closed or forgotten (closing, too slow, token
    // changed) must not change anything: an event subscription then would never be removed.
    if (client.closed || !this.clients.has(client) || client.ws.readyState !== client.ws.OPEN) return;
    try {
      this.onMessage(client, data);
    } catch (err) {
      this.log.warn({ client: client.id, err: (err as Error)?.message }, 'client message failed');
      client.sendControl({ type: 'error', message: 'bad message' });
    }
  }

  private onMessage(client: StreamClient, data: RawData): void {
    let msg: unknown;
    try {
      const text = Buffer.isBuffer(data) ? data.toString('utf8') : Array.isArray(data) ? Buffer.concat(data).toString('utf8') : Buffer.from(data).toString('utf8');
      msg = JSON.parse(text);
    } catch {
      client.sendControl({ type: 'error', message: 'malformed JSON' });
      return;
    }
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) {
      client.sendControl({ type: 'error', message: 'expected a JSON object with a "type"' });
      return;
    }
    const m = msg as Record<string, unknown>;
    const type = Object.prototype.hasOwnProperty.call(m, 'type') ? m.type : undefined;
    if (type !== 'subscribe') {
      const shown = typeof type === 'string' ? `'${type.slice(0, 64)}'` : type === undefined ? 'missing' : `not a string`;
      client.sendControl({ type: 'error', message: `unknown message type (${shown}): only "subscribe" is accepted` });
      return;
    }
    let sub: Subscription;
    try {
      sub = parseSubscription(m, client.sub);
    } catch (err) {
      client.sendControl({ type: 'error', message: err instanceof FilterError ? err.message : 'bad subscribe' });
      return;
    }
    const hadEvents = client.sub.filter.types.has('event');
    const hasEvents = sub.filter.types.has('event');
    if (hasEvents !== hadEvents) this.countEventSubscriber(hasEvents ? +1 : -1);
    client.sub = sub;
    client.sendControl({ type: 'subscribed', ...describeSubscription(sub), seq: this.streamer.seq });
    if (sub.since !== null) this.replay(client, sub.since);
  }

  private broadcast(frames: FrameCache): void {
    for (const c of this.clients) c.deliver(frames);
  }

  private closeSlow(c: StreamClient): void {
    this.slowClosed++;
    this.log.warn({ client: c.id, buffered: c.ws.bufferedAmount }, 'client over the hard limit: terminated (1013)');
    this.forget(c);
    c.terminate(CLOSE_TRY_AGAIN_LATER, 'too slow to take alerts');
  }

  private forget(c: StreamClient): void {
    if (!this.clients.delete(c)) return;
    this.droppedByGone += c.droppedTotal;
    if (c.sub.filter.types.has('event')) this.countEventSubscriber(-1);
  }

  private countEventSubscriber(delta: 1 | -1): void {
    const before = this.eventSubscribers;
    this.eventSubscribers += delta;
    if (before === 0 && this.eventSubscribers === 1) {
      this.releaseEvents = this.streamer.retainEvents();
      this.streamer.on('event', this.onEvent);
    }
    if (before === 1 && this.eventSubscribers === 0) {
      this.streamer.off('event', this.onEvent);
      this.releaseEvents?.();
      this.releaseEvents = null;
    }
  }

  private beat(): void {
    for (const c of this.clients) {
      if (!c.alive) {
        this.log.info({ client: c.id }, 'no pong: terminating');
        this.forget(c);
        c.closed = true;
        c.ws.terminate();
        continue;
      }
      c.alive = false;
      c.ws.ping();
      c.flushGap();
    }
  }

  /** Stop listening to the streamer and close every client with `code` (1001 on shutdown). */
  async close(code: number, reason: string): Promise<void> {
    clearInterval(this.heartbeat);
    this.streamer.off('alert', this.onAlert);
    this.streamer.off('stats', this.onStats);
    this.streamer.off('event', this.onEvent);
    this.releaseEvents?.();
    this.releaseEvents = null;
    const waits: Promise<void>[] = [];
    for (const c of [...this.clients]) {
      waits.push(
        new Promise<void>((resolve) => {
          if (c.ws.readyState === c.ws.CLOSED) return resolve();
          const t = setTimeout(() => {
            c.ws.terminate();
            resolve();
          }, 2000);
          t.unref();
          c.ws.once('close', () => {
            clearTimeout(t);
            resolve();
          });
          c.close(code, reason);
        }),
      );
    }
    await Promise.all(waits);
    this.clients.clear();
    this.wss.close();
  }
}

function reject(socket: Duplex, status: number, message: string): true {
  const body = JSON.stringify({ error: message });
  const reason = ({ 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 503: 'Service Unavailable' } as Record<number, string>)[status] ?? 'Error';
  const extra = status === 401 ? 'WWW-Authenticate: Bearer\r\n' : '';
  socket.end(
    `HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: application/json\r\n${extra}Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  return true;
}

/** hello carries `nflog` only when there are NFLOG groups (as stats does). */
function nflogField(groups: ReturnType<StreamerLike['nflogGroups']>): { nflog?: typeof groups } {
  return groups.length > 0 ? { nflog: groups } : {};
}
