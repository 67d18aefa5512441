// The reconnecting stream client behind `natwatch tail ws://…`. After a drop it reconnects with
// a capped exponential backoff and `since=<last alert seq>`, so no alert is missed while away
// (as long as the server's replay ring still holds it). A 4xx answer (bad token, bad filter)
// is final: retrying cannot fix it.
import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import { NatwatchError, UsageError } from '../errors.js';
import type { ServerMessage } from '../types.js';
import { printable } from './tail-view.js';

export interface TailClientOptions {
  url: string;
  types: string[];
  token?: string;
  /** Give up after this long without a successful connection (default 5 min). */
  giveUpMs?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

export type ConnState = { state: 'connecting'; attempt: number } | { state: 'open' } | { state: 'waiting'; retryInMs: number; reason: string };

export interface TailClientEvents {
  message: [ServerMessage];
  state: [ConnState];
  fatal: [Error];
}

export class TailClient extends EventEmitter<TailClientEvents> {
  /** Last alert seq seen (or the hello's seq on first contact); null before any. */
  lastSeq: number | null = null;
  private ws: WebSocket | null = null;
  private timer: NodeJS.Timeout | null = null;
  private attempt = 0;
  private downSince = Date.now();
  private stopped = false;

  constructor(private readonly opts: TailClientOptions) {
    super();
    let u: URL | null = null;
    try {
      u = new URL(opts.url);
    } catch {
      // reported below, as a usage error naming the URL
    }
    if (u?.protocol !== 'ws:' && u?.protocol !== 'wss:') throw new UsageError(`'${opts.url}' is not a ws:// or wss:// URL`);
  }

  start(): void {
    this.connect();
  }

  private streamUrl(): string {
    const u = new URL(this.opts.url);
    if (u.pathname === '/' || u.pathname === '') u.pathname = '/v1/stream';
    u.searchParams.set('types', this.opts.types.join(','));
    if (this.lastSeq !== null) u.searchParams.set('since', String(this.lastSeq));
    return u.toString();
  }

  private connect(): void {
    if (this.stopped) return;
    this.attempt++;
    this.emit('state', { state: 'connecting', attempt: this.attempt });
    const headers: Record<string, string> = {};
    if (this.opts.token) headers.authorization = `Bearer ${this.opts.token}`;
    const ws = new WebSocket(this.streamUrl(), { headers, perMessageDeflate: false, handshakeTimeout: 10_000 });
    this.ws = ws;
    let fatal = false;
    ws.on('open', () => {
      this.attempt = 0;
      this.emit('state', { state: 'open' });
    });
    ws.on('unexpected-response', (_req, res) => {
      if (res.statusCode !== undefined && res.statusCode >= 400 && res.statusCode < 500) {
        fatal = true;
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => {
          let detail = body;
          try {
            detail = (JSON.parse(body) as { error?: string }).error ?? body;
          } catch {
            // plain-text body
          }
          // The body is the server's text: no control characters reach the terminal.
          const msg = res.statusCode === 401 ? 'server refused the token (401): pass --token' : `server refused the stream (${res.statusCode}): ${printable(detail).slice(0, 200)}`;
          this.stop();
          this.emit('fatal', new NatwatchError(res.statusCode === 400 ? 'EUSAGE' : 'ERUNTIME', msg));
        });
      }
      ws.terminate();
    });
    ws.on('message', (data, binary) => {
      if (binary) return;
      let msg: ServerMessage;
      try {
        msg = JSON.parse(data.toString()) as ServerMessage;
      } catch {
        return;
      }
      if (msg.type === 'hello' && this.lastSeq === null) this.lastSeq = msg.seq;
      if (msg.type === 'alert' && (this.lastSeq === null || msg.seq > this.lastSeq)) this.lastSeq = msg.seq;
      this.emit('message', msg);
    });
    ws.on('error', () => {
      // 'close' follows and schedules the retry; the reason is reported there.
    });
    ws.on('close', (code, reason) => {
      if (this.ws === ws) this.ws = null;
      if (this.stopped || fatal) return;
      if (this.attempt === 0) this.downSince = Date.now();
      this.retry(code === 1006 ? 'connection lost' : `closed ${code}${reason.length ? ' ' + printable(reason.toString()) : ''}`);
    });
  }

  private retry(reason: string): void {
    const giveUp = this.opts.giveUpMs ?? 5 * 60_000;
    if (Date.now() - this.downSince > giveUp) {
      this.stop();
      this.emit('fatal', new NatwatchError('ERUNTIME', `cannot reach ${this.opts.url} (${reason}); gave up after ${Math.round(giveUp / 1000)} s`));
      return;
    }
    const min = this.opts.minBackoffMs ?? 250;
    const max = this.opts.maxBackoffMs ?? 10_000;
    const delay = Math.min(max, min * 2 ** Math.min(this.attempt, 16));
    // Jitter so many tails do not reconnect in lockstep after a server restart.
    const retryInMs = Math.round(delay * (0.75 + Math.random() * 0.5));
    this.emit('state', { state: 'waiting', retryInMs, reason });
    this.timer = setTimeout(() => this.connect(), retryInMs);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.ws?.close(1000);
    this.ws = null;
  }
}
