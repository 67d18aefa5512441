// Who may talk to the server: the bearer token (compared as SHA-256 digests with
// timingSafeEqual, so neither its content nor its length leaks through response timing), the
// Host check that stops DNS rebinding when there is no token, and the browser Origin check.
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

export class TokenCheck {
  private expected: Buffer | null = null;
  constructor(token?: string | null) {
    this.set(token);
  }

  /** Replace the token (SIGHUP reload); null/'' disables authentication. */
  set(token: string | null | undefined): void {
    this.expected = token ? digest(token) : null;
  }

  get required(): boolean {
    return this.expected !== null;
  }

  /** True when no token is configured or the request carries the right one. */
  allows(req: IncomingMessage, url: URL): boolean {
    return this.matches(this.presentedDigest(req, url));
  }

  /** Digest of the token a request carries (kept per client to notice a token change). */
  presentedDigest(req: IncomingMessage, url: URL): Buffer | null {
    const given = presented(req, url);
    return given === null ? null : digest(given);
  }

  /** True when no token is configured or `given` is the digest of the current one. */
  matches(given: Buffer | null): boolean {
    if (this.expected === null) return true;
    return given !== null && timingSafeEqual(given, this.expected);
  }
}

export interface AccessOptions {
  /** Browser origins allowed to open the stream (`https://ops.example:8443`); none by default. */
  allowOrigins?: readonly string[];
  /** Host names accepted without a token besides loopback literals and `localhost`. */
  allowHosts?: readonly string[];
}

/**
 * The checks made before any route or handshake. A browser page on the same machine can reach
 * a loopback listener: through its own origin (refused unless listed) or through a DNS name it
 * controls that resolves to 127.0.0.1 (the Host then names it: refused unless there is a token).
 */
export class AccessPolicy {
  private origins: Set<string>;
  private hosts: Set<string>;
  constructor(
    readonly token: TokenCheck,
    opts: AccessOptions = {},
  ) {
    this.origins = new Set((opts.allowOrigins ?? []).map(normalizeOrigin));
    this.hosts = new Set((opts.allowHosts ?? []).map((h) => h.toLowerCase()));
  }

  /** The refusal for any request (403 text), or null when its Host is acceptable. */
  hostRefusal(req: IncomingMessage): string | null {
    if (this.token.required) return null;
    const host = req.headers.host;
    if (host === undefined) return 'missing Host header';
    const name = hostName(host);
    if (name !== null && (isLoopbackLiteral(name) || name === 'localhost' || this.hosts.has(name))) return null;
    return `Host '${host.slice(0, 100)}' is not accepted without a token (use --allow-host NAME or --token)`;
  }

  /** The refusal for a WebSocket upgrade's Origin (browsers send one; other clients do not). */
  originRefusal(req: IncomingMessage): string | null {
    const origin = req.headers.origin;
    if (origin === undefined) return null;
    if (this.origins.has(normalizeOrigin(origin))) return null;
    return `Origin '${origin.slice(0, 100)}' is not allowed (use --allow-origin ORIGIN)`;
  }
}

/** Lowercase scheme://host[:port] without a trailing slash, as browsers send it. */
export function normalizeOrigin(o: string): string {
  return o.trim().replace(/\/+$/, '').toLowerCase();
}

/** The name part of a Host header (`[::1]:7600` → `::1`), lowercased; null when malformed. */
function hostName(host: string): string | null {
  const m = /^(?:\[([0-9a-f:.]+)\]|([^:[\]]+))(?::\d{1,5})?$/i.exec(host.trim());
  if (!m) return null;
  return (m[1] ?? m[2]!).toLowerCase();
}

/** 127.0.0.0/8, ::1 and ::ffff:127.x written as addresses (not names). */
function isLoopbackLiteral(h: string): boolean {
  const v = isIP(h);
  if (v === 4) return h.startsWith('127.');
  if (v === 6) return h === '::1' || /^::ffff:127\./i.test(h) || h === '0:0:0:0:0:0:0:1';
  return false;
}

function presented(req: IncomingMessage, url: URL): string | null {
  const h = req.headers.authorization;
  if (h !== undefined) {
    const m = /^Bearer\s+(.+)$/i.exec(h.trim());
    if (m) return m[1]!;
  }
  return url.searchParams.get('token');
}

/** 127.0.0.0/8, ::1, ::ffff:127.x and `localhost`. */
export function isLoopback(host: string): boolean {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  return h === 'localhost' || isLoopbackLiteral(h);
}

/** `HOST:PORT`, `[v6]:PORT` or `:PORT` (loopback). Returns null when malformed. */
export function parseListen(value: string): { host: string; port: number } | null {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value);
  if (!m) return null;
  const host = m[1] ?? (m[2] === '' ? '127.0.0.1' : m[2]!);
  const port = Number(m[3]);
  if (port > 65535) return null;
  if (m[1] !== undefined && isIP(host) !== 6) return null;
  if (m[2] !== undefined && m[2] !== '' && host !== 'localhost' && isIP(host) === 0 && !/^[a-z0-9.-]+$/i.test(host)) return null;
  return { host, port };
}
