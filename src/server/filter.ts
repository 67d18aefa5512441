// A client's subscription: which message types, minimum severity, one destination, replay point
// and wire format. Parsed from the upgrade query or a `subscribe` message; every bad value is a
// one-line FilterError naming the field.
import { isIP } from 'node:net';
import type { Alert, Severity, WireEvent } from '../types.js';
import { endpoint } from '../endpoint.js';

export type StreamType = 'alert' | 'stats' | 'event' | 'gap';
export type StreamFormat = 'json' | 'msgpack' | 'ecs';

const TYPES: readonly StreamType[] = ['alert', 'stats', 'event', 'gap'];
const FORMATS: readonly StreamFormat[] = ['json', 'msgpack', 'ecs'];
const DEFAULT_TYPES: readonly StreamType[] = ['alert', 'stats', 'gap'];

const SEVERITY_RANK: Record<Severity, number> = { warning: 1, critical: 2 };

export interface StreamFilter {
  types: ReadonlySet<StreamType>;
  /** Minimum severity for alerts; null = all. */
  severity: Severity | null;
  dstIp: string | null;
  dstPort: number | null;
  /** Only alerts and events of this namespace (its name as in `netns`); null = all. */
  netns: string | null;
}

export interface Subscription {
  filter: StreamFilter;
  format: StreamFormat;
  /** Replay alerts with seq > since before going live; null = no replay. */
  since: number | null;
}

export class FilterError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FilterError';
  }
}

function defaultFilter(): StreamFilter {
  return { types: new Set(DEFAULT_TYPES), severity: null, dstIp: null, dstPort: null, netns: null };
}

/** Fields as they arrive from a query string (strings) or a subscribe message (JSON values). */
export type SubscriptionFields = Record<string, unknown>;

/**
 * Parse the fields present in `fields` over `base` (a subscribe message changes only what it
 * names). Unknown fields are ignored so newer clients can talk to older servers.
 */
export function parseSubscription(fields: SubscriptionFields, base?: Subscription): Subscription {
  const filter: StreamFilter = base ? { ...base.filter } : defaultFilter();
  let format: StreamFormat = base?.format ?? 'json';
  let since: number | null = null;

  // Every value is checked by type before use: a subscribe message is arbitrary JSON, and
  // String() of `{"toString":1}` throws.
  const format_ = text(fields, 'format') ?? undefined;
  if (format_ !== undefined) {
    if (!(FORMATS as readonly string[]).includes(format_)) throw new FilterError(`format: '${shown(format_)}' is not one of ${FORMATS.join(', ')}`);
    format = format_ as StreamFormat;
  }
  if (own(fields, 'types')) filter.types = parseTypes(fields.types);
  const s = text(fields, 'severity', true);
  if (s !== undefined && s !== null) {
    if (s === '' || s === 'all') filter.severity = null;
    else if (s === 'warning' || s === 'critical') filter.severity = s;
    else throw new FilterError(`severity: '${shown(s)}' is not warning or critical`);
  }
  const dst = text(fields, 'dst', true);
  if (dst !== undefined) {
    const d = parseDst(dst ?? '');
    filter.dstIp = d.ip;
    filter.dstPort = d.port;
  }
  const ns = text(fields, 'netns', true);
  if (ns !== undefined) {
    // A namespace name (as `ip netns` allows) or a path as given to --netns; '' or null clears.
    if (ns !== null && ns.length > 4096) throw new FilterError(`netns: '${shown(ns)}' is too long`);
    filter.netns = ns === null || ns === '' ? null : ns;
  }
  if (own(fields, 'since') && fields.since !== null) {
    const v = fields.since;
    if (typeof v === 'number') {
      if (!Number.isSafeInteger(v) || v < 0) throw new FilterError(`since: ${shown(String(v))} is not a sequence number`);
      since = v;
    } else if (typeof v === 'string') {
      if (!/^\d{1,15}$/.test(v)) throw new FilterError(`since: '${shown(v)}' is not a sequence number`);
      since = Number(v);
    } else throw new FilterError(`since: expected a number, got ${typeName(v)}`);
  }
  return { filter, format, since };
}

function own(fields: SubscriptionFields, k: string): boolean {
  return Object.prototype.hasOwnProperty.call(fields, k) && fields[k] !== undefined;
}

/** A string field (or null when `nullable`); undefined when absent; anything else is refused. */
function text(fields: SubscriptionFields, k: string, nullable = false): string | null | undefined {
  if (!own(fields, k)) return undefined;
  const v = fields[k];
  if (typeof v === 'string') return v;
  if (v === null && nullable) return null;
  throw new FilterError(`${k}: expected a string, got ${typeName(v)}`);
}

function typeName(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

/** Client-supplied text echoed in an error: bounded, so a 60 KiB value is not sent back. */
function shown(s: string): string {
  return s.length > 64 ? `${s.slice(0, 64)}…` : s;
}

function parseTypes(v: unknown): Set<StreamType> {
  let list: string[];
  if (typeof v === 'string') list = v.split(',');
  else if (Array.isArray(v) && v.every((t) => typeof t === 'string')) list = v as string[];
  else throw new FilterError(`types: expected a comma-separated string or a list of strings, got ${typeName(v)}`);
  if (list.length > TYPES.length * 4) throw new FilterError(`types: too many entries (${list.length})`);
  const out = new Set<StreamType>();
  for (const raw of list) {
    const t = raw.trim();
    if (t === '') continue;
    if (!(TYPES as readonly string[]).includes(t)) throw new FilterError(`types: '${shown(t)}' is not one of ${TYPES.join(', ')}`);
    out.add(t as StreamType);
  }
  if (out.size === 0) throw new FilterError('types: empty list');
  return out;
}

/** `IP`, `IP:PORT`, `[IPv6]:PORT` or a bare IPv6 address; '' clears the filter. */
export function parseDst(raw: string): { ip: string | null; port: number | null } {
  if (raw === '') return { ip: null, port: null };
  let ip = raw;
  let port: string | null = null;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(raw);
  if (bracket) {
    ip = bracket[1]!;
    port = bracket[2] ?? null;
  } else if (isIP(raw) === 0) {
    const i = raw.lastIndexOf(':');
    if (i > 0) {
      ip = raw.slice(0, i);
      port = raw.slice(i + 1);
    }
  }
  if (isIP(ip) === 0) throw new FilterError(`dst: '${shown(raw)}' is not IP or IP:PORT`);
  if (port !== null && (!/^\d{1,5}$/.test(port) || Number(port) > 65535)) throw new FilterError(`dst: '${shown(raw)}' has a bad port`);
  return { ip: normalizeIp(ip), port: port === null ? null : Number(port) };
}

/** Compressed lowercase IPv6 so `2001:DB8:0::1` matches the wire's `2001:db8::1`. */
function normalizeIp(ip: string): string {
  if (isIP(ip) !== 6) return ip;
  try {
    return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  } catch {
    return ip.toLowerCase();
  }
}

function dstMatches(f: StreamFilter, ip: string | null | undefined, port: number | null | undefined): boolean {
  if (f.dstIp === null) return true;
  // Host-wide alerts (table full, event loss) carry no destination, and an nflog aggregate a
  // null one: they concern every destination, the filtered one too.
  if (ip === undefined || ip === null) return true;
  return ip === f.dstIp && (f.dstPort === null || port === f.dstPort);
}

export function alertMatches(f: StreamFilter, a: Alert): boolean {
  if (!f.types.has('alert')) return false;
  if (f.severity !== null && SEVERITY_RANK[a.severity] < SEVERITY_RANK[f.severity]) return false;
  if (f.netns !== null && a.netns !== f.netns) return false;
  const key = a.key as { dstIp?: string | null; dstPort?: number | null };
  return dstMatches(f, key.dstIp, key.dstPort);
}

export function statsMatches(f: StreamFilter): boolean {
  return f.types.has('stats');
}

export function eventMatches(f: StreamFilter, e: WireEvent): boolean {
  if (!f.types.has('event')) return false;
  if (f.netns !== null && e.netns !== f.netns) return false;
  if (f.dstIp === null) return true;
  return e.source === 'conntrack'
    ? e.orig.dst === f.dstIp && (f.dstPort === null || e.orig.dport === f.dstPort)
    : e.dst === f.dstIp && (f.dstPort === null || e.dport === f.dstPort);
}

/** The subscription as echoed back in `subscribed`. */
export function describeSubscription(s: Subscription): Record<string, unknown> {
  const f = s.filter;
  const dst = f.dstIp === null ? null : f.dstPort === null ? f.dstIp : endpoint(f.dstIp, f.dstPort);
  return { format: s.format, types: [...f.types], severity: f.severity, dst, netns: f.netns };
}
