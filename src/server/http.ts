// HTTP endpoints sharing the stream's port: /healthz (no token: for probes; it says only
// starting/ok/degraded), /metrics, /v1/alerts, /v1/top. Anything else is left to the caller
// (404 when standalone). The Host check (DNS rebinding) comes before every route.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import type { StreamerLike } from '../types.js';
import type { AccessPolicy } from './auth.js';

export interface HttpContext {
  streamer: StreamerLike;
  registry: Registry;
  access: AccessPolicy;
}

const ROUTES = new Set(['/healthz', '/metrics', '/v1/alerts', '/v1/top']);

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), 'cache-control': 'no-store' });
  res.end(data);
}

/**
 * The request target as a URL, or null when it is not one (`GET //` makes the URL parser
 * throw, and a throw inside a 'request' or 'upgrade' listener would take the process down).
 */
export function requestUrl(req: IncomingMessage): URL | null {
  try {
    return new URL(req.url ?? '/', 'http://x');
  } catch {
    return null;
  }
}

/** Serves our routes; returns false (and writes nothing) for any other path. */
export function handleHttp(ctx: HttpContext, req: IncomingMessage, res: ServerResponse): boolean {
  const url = requestUrl(req);
  if (url === null || !ROUTES.has(url.pathname)) return false;
  const refused = ctx.access.hostRefusal(req);
  if (refused !== null) {
    sendJson(res, 403, { error: refused });
    return true;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('allow', 'GET, HEAD');
    sendJson(res, 405, { error: 'method not allowed' });
    return true;
  }
  if (url.pathname === '/healthz') {
    // Liveness is "it answers"; readiness is the status code. Nothing else is said here: the
    // route needs no token, so versions, namespaces and counts stay behind it.
    const status = ctx.streamer.readiness();
    sendJson(res, status === 'ok' ? 200 : 503, { status });
    return true;
  }
  if (!ctx.access.token.allows(req, url)) {
    res.setHeader('www-authenticate', 'Bearer');
    sendJson(res, 401, { error: 'missing or wrong token' });
    return true;
  }
  switch (url.pathname) {
    case '/metrics':
      ctx.registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': ctx.registry.contentType });
          res.end(text);
        },
        (err: Error) => sendJson(res, 500, { error: err.message }),
      );
      return true;
    case '/v1/alerts':
      sendJson(res, 200, ctx.streamer.firing());
      return true;
    default:
      sendJson(res, 200, ctx.streamer.top());
      return true;
  }
}
