// The WebSocket side: upgrade checks (path, token, query) before any handshake, the `hello`,
// `since` replay, live subscribe, heartbeats, and fan-out of the streamer's messages.
import { hostname } from 'node:os';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';
import type { Alert, StatsMessage, StreamerLike, WireEvent } from '../types.js';
import { VERSION } from '../version.js';
import type { Logger } from '../log.js';
import { alertMatches, describeSubscription, FilterError, parseSubscription, type Subscription } from './filter.js';
import { FrameCache } from './encode.js';
import { CLOSE_TRY_AGAIN_LATER, StreamClient, type BackpressureLimits } from './client.js';
import type { TokenCheck } from './auth.js';
import { requestUrl } from './http.js';

export interface StreamOptions extends BackpressureLimits {
  path: string;
  maxPayload: number;
  heartbeatMs: number;
}

export class StreamHub {
  readonly clients = new Set<StreamClient>();
  slowClosed = 0;
  droppedByGone = 0;
  private readonly wss: WebSocketServer;
  private nextId = 1;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly onAlert = (a: Alert): void => this.broadcast(new FrameCache({ type: 'alert', msg: a }));
  private readonly onStats = (s: StatsMessage): void => this.broadcast(new FrameCache({ type: 'stats', msg: s }));
  private readonly onEvent = (e: WireEvent): void => this.broadcast(new FrameCache({ type: 'event', msg: e }));
  /**
   * Clients that asked for events. The 'event' listener is attached only while this is > 0:
   * the streamer builds event objects only when someone listens (high volume otherwise free).
   */
  private eventSubscribers = 0;
  /** Held while eventSubscribers > 0: the streamer receives conntrack UPDATEs only then. */
  private releaseEvents: (() => void) | null = null;

  constructor(
    private readonly streamer: StreamerLike,
    private readonly opts: StreamOptions,
    private readonly token: TokenCheck,
    private readonly log: Logger,
  ) {
    this.wss = new WebSocketServer({ noServer: true, maxPayload: opts.maxPayload, perMessageDeflate: false, clientTracking: false });
    streamer.on('alert', this.onAlert);
    streamer.on('stats', this.onStats);
    this.heartbeat = setInterval(() => this.beat(), opts.heartbeatMs);
    this.heartbeat.unref();
  }

  /** Handles an HTTP upgrade; returns false when the path is not ours (left to the host app). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    const url = requestUrl(req);
    if (url === null || url.pathname !== this.opts.path) return false;
    socket.on('error', () => socket.destroy());
    if (!this.token.allows(req, url)) return reject(socket, 401, 'missing or wrong token');
    let sub: Subscription;
    try {
      sub = parseSubscription(Object.fromEntries(url.searchParams));
    } catch (err) {
      return reject(socket, 400, (err as Error).message);
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.accept(ws, req, sub));
    return true;
  }

  private accept(ws: WebSocket, req: IncomingMessage, sub: Subscription): void {
    const client = new StreamClient(this.nextId++, ws, sub, this.opts, (c) => this.closeSlow(c));
    this.clients.add(client);
    if (sub.filter.types.has('event')) this.countEventSubscriber(+1);
    const log = this.log.child({ client: client.id });
    log.info({ remote: req.socket.remoteAddress, ...describeSubscription(sub), since: sub.since }, 'client connected');

    ws.on('pong', () => (client.alive = true));
    ws.on('message', (data) => this.onMessage(client, data));
    ws.on('error', (err) => log.warn({ err: err.message }, 'client socket error'));
    ws.on('close', (code) => {
      this.forget(client);
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

  private replay(client: StreamClient, since: number): void {
    for (const a of this.streamer.alertsSince(since)) {
      if (alertMatches(client.sub.filter, a)) client.deliverReplay(new FrameCache({ type: 'alert', msg: a }));
    }
  }

  private onMessage(client: StreamClient, data: RawData): void {
    let msg: unknown;
    try {
      msg = JSON.parse((data as Buffer).toString('utf8'));
    } catch {
      client.sendControl({ type: 'error', message: 'malformed JSON' });
      return;
    }
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) {
      client.sendControl({ type: 'error', message: 'expected a JSON object with a "type"' });
      return;
    }
    const m = msg as Record<string, unknown>;
    if (m.type !== 'subscribe') {
      client.sendControl({ type: 'error', message: `unknown message type '${String(m.type).slice(0, 64)}'` });
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
    this.log.warn({ client: c.id, buffered: c.ws.bufferedAmount }, 'client cannot take alerts: closing 1013');
    this.forget(c);
    c.close(CLOSE_TRY_AGAIN_LATER, 'too slow to take alerts');
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
  const reason = status === 401 ? 'Unauthorized' : status === 400 ? 'Bad Request' : 'Error';
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
