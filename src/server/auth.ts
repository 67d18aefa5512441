// Bearer-token check and the loopback rule. The token is compared as SHA-256 digests with
// timingSafeEqual, so neither its content nor its length leaks through response timing.
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

  /** True when no token is configured or the request carries the right one. */
  allows(req: IncomingMessage, url: URL): boolean {
    if (this.expected === null) return true;
    const given = presented(req, url);
    return given !== null && timingSafeEqual(digest(given), this.expected);
  }
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
  if (h === 'localhost') return true;
  const v = isIP(h);
  if (v === 4) return h.startsWith('127.');
  if (v === 6) return h === '::1' || /^::ffff:127\./i.test(h);
  return false;
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
