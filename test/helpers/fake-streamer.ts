// A StreamerLike that tests drive by hand: emitAlert/emitStats/emitEvent push messages exactly as
// the real Streamer would (seq assigned, replay ring kept, firing set maintained).
import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import { unpack } from 'msgpackr';
import { netnsName } from '../../src/server/labels.js';
import type { Alert, AlertKey, AlertKind, ConntrackEvent, NamespaceTotals, Readiness, Severity, StatsMessage, StreamerLike, TopEntry } from '../../src/types.js';

export interface AlertInit {
  kind?: AlertKind;
  severity?: Severity;
  state?: 'firing' | 'resolved';
  key?: AlertKey;
  used?: number | null;
  capacity?: number | null;
  drops?: number;
  message?: string;
  etaSeconds?: number | null;
  netns?: string | null;
}

export class FakeStreamer extends EventEmitter implements StreamerLike {
  seq = 0;
  readonly netns: string | null;
  readonly startedAt = new Date().toISOString();
  private readonly ring: Alert[] = [];
  private readonly live = new Map<string, Alert>();
  private stats: StatsMessage | null = null;
  topEntries: TopEntry[] = [];
  received = { conntrack: 0, nflog: 0 };
  lost = { conntrack: 0, nflog: 0 };
  nflogPackets: Array<{ group: number; prefix: string; packets: number }> = [];
  natAddressList: Array<{ proto: string; natIp: string; maxUtilization: number; destinations: number }> = [];
  closed = false;
  /** retainEvents() holders (what the real streamer turns into UPDATE group membership). */
  eventRetains = 0;
  /** What /healthz reports; tests set it. */
  ready: Readiness = 'ok';

  constructor(opts: { netns?: string | null; ringSize?: number } = {}) {
    super();
    this.netns = opts.netns ?? null;
    this.ringSize = opts.ringSize ?? 1000;
  }
  private readonly ringSize: number;

  nflog: Array<{ group: number; bound: boolean; reason: string | null }> = [];
  nflogGroups() {
    return this.nflog;
  }

  retainEvents(): () => void {
    this.eventRetains++;
    let held = true;
    return () => {
      if (held) this.eventRetains--;
      held = false;
    };
  }

  emitAlert(init: AlertInit = {}): Alert {
    const key = init.key ?? { proto: 'tcp', natIp: '198.51.100.1', dstIp: '198.51.100.8', dstPort: 80 };
    const used = init.used === undefined ? 10 : init.used;
    const capacity = init.capacity === undefined ? 10 : init.capacity;
    const a: Alert = {
      type: 'alert',
      seq: ++this.seq,
      ts: new Date().toISOString(),
      kind: init.kind ?? 'nat_port_exhaustion',
      severity: init.severity ?? 'critical',
      state: init.state ?? 'firing',
      // A single-namespace streamer's alerts carry its namespace's name.
      netns: init.netns !== undefined ? init.netns : netnsName(this.netns),
      key,
      used,
      capacity,
      utilization: used !== null && capacity ? used / capacity : null,
      drops: init.drops ?? 0,
      message: init.message ?? 'NAT ports to 198.51.100.8:80 exhausted: widen the masquerade port range or add SNAT addresses',
      ...(init.etaSeconds !== undefined ? { etaSeconds: init.etaSeconds } : {}),
    };
    this.ring.push(a);
    if (this.ring.length > this.ringSize) this.ring.shift();
    const id = `${a.kind}|${a.netns}|${JSON.stringify(a.key)}`;
    if (a.state === 'firing') this.live.set(id, a);
    else this.live.delete(id);
    this.emit('alert', a);
    return a;
  }

  emitStats(over: Partial<StatsMessage> = {}): StatsMessage {
    const s: StatsMessage = {
      type: 'stats',
      ts: new Date().toISOString(),
      conntrack: { count: 120, max: 262144, buckets: 65536 },
      counters: { found: 0, invalid: 1, insert: 0, insert_failed: 5, drop: 5, early_drop: 0, error: 0, search_restart: 0, clash_resolve: 0, chaintoolong: 0 },
      rates: { new: 12, destroy: 3, drop: 1 },
      top: this.topEntries,
      ...over,
    };
    this.stats = s;
    this.emit('stats', s);
    return s;
  }

  emitEvent(over: Partial<ConntrackEvent> = {}): ConntrackEvent {
    const e: ConntrackEvent = {
      type: 'event',
      source: 'conntrack',
      netns: netnsName(this.netns),
      event: 'new',
      id: 1,
      ts: new Date().toISOString(),
      family: 'ipv4',
      proto: 'tcp',
      orig: { src: '192.0.2.5', dst: '198.51.100.8', sport: 40000, dport: 80 },
      reply: { src: '198.51.100.8', dst: '198.51.100.1', sport: 80, dport: 50000 },
      state: 'SYN_SENT',
      nat: 'snat',
      timeout: 120,
      mark: 0,
      zone: 0,
      ...over,
    };
    this.received.conntrack++;
    this.emit('event', e);
    return e;
  }

  firing(): Alert[] {
    return [...this.live.values()];
  }
  alertsSince(since: number): Alert[] {
    return this.ring.filter((a) => a.seq > since);
  }
  top(): TopEntry[] {
    return this.topEntries;
  }
  lastStats(): StatsMessage | null {
    return this.stats;
  }
  readiness(): Readiness {
    return this.ready;
  }
  /** Each watched namespace's counts, as a streamer watching several reports them (null: one). */
  namespaceTotals: NamespaceTotals[] | null = null;
  totals() {
    const t = { eventsReceived: { ...this.received }, eventsLost: { ...this.lost }, nflogPackets: this.nflogPackets.map((c) => ({ ...c })) };
    return this.namespaceTotals ? { ...t, namespaces: this.namespaceTotals } : t;
  }
  natAddresses() {
    return this.natAddressList;
  }
  async close(): Promise<void> {
    this.closed = true;
  }
}

// ---- a recording WebSocket client for server tests ----

export interface Received {
  msg: Record<string, unknown>;
  binary: boolean;
}

/** A ws client that records every message and lets a test await the next one matching. */
export class TestClient {
  readonly received: Received[] = [];
  closeCode: number | null = null;
  closeReason = '';
  private waiters: Array<() => void> = [];
  readonly opened: Promise<void>;
  readonly closedP: Promise<number>;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data, binary) => {
      const buf = data as Buffer;
      const msg = binary ? (unpack(buf) as Record<string, unknown>) : (JSON.parse(buf.toString('utf8')) as Record<string, unknown>);
      this.received.push({ msg, binary });
      this.wake();
    });
    this.opened = new Promise((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
      ws.once('error', reject);
    });
    this.closedP = new Promise((resolve) => {
      ws.once('close', (code, reason) => {
        this.closeCode = code;
        this.closeReason = reason.toString();
        this.wake();
        resolve(code);
      });
    });
    this.opened.catch(() => undefined);
  }

  static async open(url: string, opts: WebSocket.ClientOptions = {}): Promise<TestClient> {
    const c = new TestClient(new WebSocket(url, opts));
    await c.opened;
    return c;
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Messages so far with the given type. */
  ofType(type: string): Record<string, unknown>[] {
    return this.received.filter((r) => r.msg.type === type).map((r) => r.msg);
  }

  /** Wait (bounded) until `pred` holds over the received list. */
  async until(pred: (r: Received[]) => boolean, timeoutMs = 3000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this.received)) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out; received: ${JSON.stringify(this.received.map((r) => r.msg.type))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Wait for the n-th (1-based count) message of a type and return it. */
  async next(type: string, count = 1, timeoutMs = 3000): Promise<Record<string, unknown>> {
    await this.until((r) => r.filter((x) => x.msg.type === type).length >= count, timeoutMs);
    return this.ofType(type)[count - 1]!;
  }

  send(obj: unknown): void {
    this.ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
  }

  close(): void {
    this.ws.close();
  }
}
