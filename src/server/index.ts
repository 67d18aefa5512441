// attachServer: the stream + endpoints on an existing http(s).Server (embedding).
// startServer: a standalone server with its own listener, TLS optional, 404 for other paths.
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Registry } from 'prom-client';
import type { StreamerLike } from '../types.js';
import { NatwatchError, UsageError } from '../errors.js';
import { logger, type Logger } from '../log.js';
import { AccessPolicy, isLoopback, TokenCheck } from './auth.js';
import { handleHttp, sendJson } from './http.js';
import { createMetrics } from './metrics.js';
import { StreamHub } from './stream.js';
import { CLOSE_GOING_AWAY } from './client.js';

export { FilterError, parseSubscription, type StreamFormat, type StreamType, type Subscription } from './filter.js';
export { alertToEcs, statsToEcs, eventToEcs, controlToEcs, ecsContext, ECS_SEVERITY, type EcsContext, type NflogVerdict } from './ecs.js';

export interface AttachOptions {
  /** WebSocket path (default /v1/stream). */
  path?: string;
  /** Require this bearer token on the stream and every endpoint but /healthz. */
  token?: string | null;
  /** Largest client message accepted, bytes (default 64 KiB; larger → close 1009). */
  maxPayload?: number;
  /** Per-client bufferedAmount above which events/stats are skipped (default 1 MiB). */
  highWaterMark?: number;
  /** Per-client bufferedAmount above which the client is closed 1013 (default 8 MiB). */
  hardLimit?: number;
  /** Ping interval; a client that has not answered the previous ping is dropped (default 15 s). */
  heartbeatMs?: number;
  /** Stream clients at most (default 64); past it an upgrade gets 503. */
  maxClients?: number;
  /** Stream clients per remote address at most (default 16); past it an upgrade gets 503. */
  maxClientsPerAddress?: number;
  /** Browser origins allowed to open the stream; none by default (an upgrade with another Origin gets 403). */
  allowOrigins?: readonly string[];
  /** Without a token, Host names accepted besides loopback literals and `localhost` (others get 403). */
  allowHosts?: readonly string[];
  logger?: Logger;
}

export interface ClientInfo {
  id: number;
  sent: number;
  dropped: number;
  buffered: number;
}

export interface NatwatchServer {
  /** Serve our HTTP routes; false when the path is not ours (call your own handler then). */
  handleRequest(req: IncomingMessage, res: ServerResponse): boolean;
  /** Prometheus registry with natwatch's metrics (add it to your own with Registry.merge). */
  readonly registry: Registry;
  /** Number of connected stream clients. */
  readonly clientCount: number;
  /** Per-client counters: messages sent, skipped (gap), bytes waiting in the send buffer. */
  clients(): ClientInfo[];
  /**
   * Replace the token (null disables auth). Clients that authenticated with another token are
   * closed with 1008; the others stay connected.
   */
  setToken(token: string | null): void;
  /** Close stream clients with 1001 and detach (does not close the http.Server). */
  close(): Promise<void>;
}

/** Plain or TLS: both emit 'upgrade' with the same arguments. */
type AnyServer = Server | HttpsServer;

/** Each attached server's access policy, for startServer's own 404 route (kept off the public type). */
const policies = new WeakMap<NatwatchServer, AccessPolicy>();

export function attachServer(server: AnyServer, streamer: StreamerLike, opts: AttachOptions = {}): NatwatchServer {
  const log = opts.logger ?? logger('server');
  const token = new TokenCheck(opts.token);
  const access = new AccessPolicy(token, opts);
  const hub = new StreamHub(
    streamer,
    {
      path: opts.path ?? '/v1/stream',
      maxPayload: opts.maxPayload ?? 64 * 1024,
      highWaterMark: opts.highWaterMark ?? 1024 * 1024,
      hardLimit: opts.hardLimit ?? 8 * 1024 * 1024,
      heartbeatMs: opts.heartbeatMs ?? 15_000,
      maxClients: opts.maxClients ?? 64,
      maxClientsPerAddress: opts.maxClientsPerAddress ?? 16,
    },
    access,
    log,
  );
  const metrics = createMetrics({
    streamers: () => [streamer],
    clients: () => hub.clients,
    slowClosed: () => hub.slowClosed,
    droppedByGone: () => hub.droppedByGone,
  });
  const registry = metrics.registry;
  const ctx = { streamer, registry, access };
  const onUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    try {
      // Not our path: the host app's own upgrade listener answers; if there is none, say 404
      // rather than leave the socket hanging.
      if (!hub.handleUpgrade(req, socket, head) && server.listenerCount('upgrade') === 1) {
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      }
    } catch (err) {
      log.error({ err: (err as Error).message }, 'upgrade failed');
      socket.destroy();
    }
  };
  server.on('upgrade', onUpgrade);
  let closed: Promise<void> | null = null;
  const nw: NatwatchServer = {
    handleRequest: (req, res) => handleHttp(ctx, req, res),
    registry,
    get clientCount() {
      return hub.clients.size;
    },
    clients: () => [...hub.clients].map((c) => ({ id: c.id, sent: c.sent, dropped: c.droppedTotal, buffered: c.ws.bufferedAmount })),
    setToken: (t) => {
      token.set(t);
      hub.revalidate();
    },
    close() {
      closed ??= (async () => {
        server.off('upgrade', onUpgrade);
        metrics.close();
        await hub.close(CLOSE_GOING_AWAY, 'server shutting down');
      })();
      return closed;
    },
  };
  policies.set(nw, access);
  return nw;
}

export interface StartOptions extends AttachOptions {
  /** Default 127.0.0.1. A non-loopback host requires `token`. */
  host?: string;
  /** Default 7600; 0 picks a free port. */
  port?: number;
  /** PEM certificate and key (contents, not paths) for wss:// and https://. */
  tls?: { cert: string | Buffer; key: string | Buffer };
}

export interface StandaloneServer extends NatwatchServer {
  readonly server: AnyServer;
  /** Where it listens (port resolved when 0 was asked). */
  readonly address: { host: string; port: number };
  /** `ws://host:port/v1/stream` or `wss://…`. */
  readonly url: string;
}

/** `startServer(streamer, opts)`, or `startServer({ streamer, ...opts })`. */
export async function startServer(streamer: StreamerLike, opts?: StartOptions): Promise<StandaloneServer>;
export async function startServer(opts: StartOptions & { streamer: StreamerLike }): Promise<StandaloneServer>;
export async function startServer(a: StreamerLike | (StartOptions & { streamer: StreamerLike }), b: StartOptions = {}): Promise<StandaloneServer> {
  const isStreamer = typeof (a as StreamerLike).firing === 'function';
  const streamer = isStreamer ? (a as StreamerLike) : (a as { streamer: StreamerLike }).streamer;
  const opts: StartOptions = isStreamer ? b : (a as StartOptions);
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 7600;
  if (!isLoopback(host) && !opts.token) {
    throw new UsageError(`--listen: refusing non-loopback address ${host} without --token`);
  }
  const server: AnyServer = opts.tls ? createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key }) : createHttpServer();
  const nw = attachServer(server, streamer, opts);
  const access = policies.get(nw)!;
  server.on('request', (req, res) => {
    if (nw.handleRequest(req, res)) return;
    const refused = access.hostRefusal(req);
    sendJson(res, refused === null ? 404 : 403, { error: refused ?? 'not found' });
  });
  // Keep-alive sockets from HTTP clients must not hold close() open.
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    const onErr = (err: NodeJS.ErrnoException): void => {
      reject(new NatwatchError('ERUNTIME', `cannot listen on ${host}:${port}: ${err.code ?? err.message}`, { cause: err }));
    };
    server.once('error', onErr);
    server.listen(port, host, () => {
      server.off('error', onErr);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  const shownHost = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `${opts.tls ? 'wss' : 'ws'}://${shownHost}:${addr.port}${opts.path ?? '/v1/stream'}`;
  let closing: Promise<void> | null = null;
  return {
    ...nw,
    handleRequest: nw.handleRequest,
    get clientCount() {
      return nw.clientCount;
    },
    server,
    address: { host: addr.address, port: addr.port },
    url,
    close() {
      closing ??= (async () => {
        const done = new Promise<void>((resolve) => server.close(() => resolve()));
        await nw.close();
        server.closeAllConnections();
        await done;
      })();
      return closing;
    },
  };
}
