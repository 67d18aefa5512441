// Elastic Common Schema documents for the `ecs` format (stream, `tail --format ecs`, `events
// --format ecs`), so a SIEM ingests them as is. ECS fields where ECS has one (checked against
// the official field list by test/unit/ecs-fields.test.ts); everything else under `natwatch.*`
// in snake_case. Every document, control messages included, has `@timestamp`, `host.name` and
// `observer.*` saying which gateway produced it; the namespace is `natwatch.netns`.
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import type { Alert, ConntrackEvent, NflogEvent, StatsMessage, WireEvent } from '../types.js';
import { VERSION } from '../version.js';
import { netnsName, netnsOf } from './labels.js';

/** The ECS release these documents follow (the @elastic/ecs field list the tests use). */
export const ECS_VERSION = '9.4.0';

/**
 * event.severity is numeric and source-defined in ECS; these follow the scale of Elastic's
 * detection rules (47 medium, 73 high) so dashboards sort alerts sensibly.
 */
export const ECS_SEVERITY = { warning: 47, critical: 73 } as const;

/**
 * Does the rule that logs to NFLOG (group, prefix) drop or reject the packet? true: drops or
 * rejects (the document is `event.type: denied`); false: it accepts or continues; null: not
 * known (no ruleset fact): `info`. The ruleset reader provides it (StreamerLike.nflogDenies).
 */
export type NflogVerdict = (group: number, prefix: string, netns?: string | null) => boolean | null;

/**
 * One id per alert episode (firing → resolved), shared by every document of the episode,
 * including re-sends and escalations. Alerts must be noted in the order they are emitted;
 * a replayed alert whose episode was already noted gets the same id back (by seq).
 */
export class EpisodeIds {
  private readonly open = new Map<string, string>();
  private readonly bySeq = new Map<number, string>();

  constructor(private readonly seqMax = 2000) {}

  note(a: Alert): string {
    const known = this.bySeq.get(a.seq);
    if (known !== undefined) return known;
    const key = `${netnsOf(a, null) ?? ''}|${a.kind}|${JSON.stringify(a.key)}`;
    let id = this.open.get(key);
    if (id === undefined) id = randomUUID();
    if (a.state === 'firing') this.open.set(key, id);
    else this.open.delete(key);
    this.bySeq.set(a.seq, id);
    if (this.bySeq.size > this.seqMax) this.bySeq.delete(this.bySeq.keys().next().value!);
    return id;
  }
}

export interface EcsContext {
  /** host.name / observer.hostname: the gateway. */
  host: string;
  /** Namespace name (natwatch.netns); null: natwatch's own. */
  netns: string | null;
  nflogDenies: NflogVerdict;
  episodes: EpisodeIds;
}

export function ecsContext(o: { host?: string; netns?: string | null; nflogDenies?: NflogVerdict | undefined } = {}): EcsContext {
  return {
    host: o.host ?? hostname(),
    netns: netnsName(o.netns ?? null),
    nflogDenies: o.nflogDenies ?? (() => null),
    episodes: new EpisodeIds(),
  };
}

let fallback: EcsContext | null = null;
/** This host, natwatch's own namespace, no NFLOG verdicts: for callers that give no context. */
export function defaultEcsContext(): EcsContext {
  return (fallback ??= ecsContext());
}

/** IANA protocol keywords (ECS network.transport) and numbers for natwatch's protocol names. */
const IANA: Record<string, [string, number]> = {
  icmp: ['icmp', 1],
  igmp: ['igmp', 2],
  tcp: ['tcp', 6],
  udp: ['udp', 17],
  dccp: ['dccp', 33],
  ipv6: ['ipv6', 41],
  gre: ['gre', 47],
  esp: ['esp', 50],
  ah: ['ah', 51],
  icmpv6: ['ipv6-icmp', 58],
  'ipv6-icmp': ['ipv6-icmp', 58],
  sctp: ['sctp', 132],
  udplite: ['udplite', 136],
};

function network(proto: string | undefined, family?: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (proto !== undefined) {
    const known = IANA[proto];
    if (known) {
      out.transport = known[0];
      out.iana_number = String(known[1]);
    } else if (/^\d+$/.test(proto)) out.iana_number = proto;
    else out.transport = proto;
  }
  if (family !== undefined) out.type = family;
  return out;
}

/** ICMP ids travel in the port fields of the wire events; they are not ports. */
const isIcmp = (proto: string): boolean => proto === 'icmp' || proto === 'icmpv6' || proto === 'ipv6-icmp';

const snakeKey = (k: string): string => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** Deep copy with snake_case keys (natwatch.* custom fields). */
export function snakeCase(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(snakeCase);
  if (v === null || typeof v !== 'object') return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[snakeKey(k)] = snakeCase(x);
  return out;
}

/** `item`: the message, whose own `netns` (multi-namespace streamers) wins over the context's. */
function base(ctx: EcsContext, ts: string, natwatch: Record<string, unknown>, item?: object): Record<string, unknown> {
  return {
    '@timestamp': ts,
    ecs: { version: ECS_VERSION },
    host: { name: ctx.host },
    observer: { hostname: ctx.host, product: 'natwatch', vendor: 'natwatch', version: VERSION },
    natwatch: { ...natwatch, netns: netnsName(netnsOf(item, ctx.netns)) },
  };
}

export function alertToEcs(a: Alert, ctx: EcsContext = defaultEcsContext()): Record<string, unknown> {
  // null fields: an nflog_drop aggregate (one rule, many destinations) names no destination.
  const key = a.key as Partial<{ proto: string | null; natIp: string; dstIp: string | null; dstPort: number | null; prefix: string; group: number }>;
  const type = [a.state === 'firing' ? 'start' : 'end'];
  if (a.kind === 'nflog_drop' && key.group !== undefined && ctx.nflogDenies(key.group, key.prefix ?? '', a.netns) === true) type.push('denied');
  const { type: _t, ts: _ts, message: _m, ...rest } = a;
  const doc: Record<string, unknown> = {
    ...base(ctx, a.ts, { type: 'alert', ...(snakeCase(rest) as Record<string, unknown>) }, a),
    event: {
      kind: 'alert',
      category: ['network'],
      type,
      id: ctx.episodes.note(a),
      severity: ECS_SEVERITY[a.severity],
      action: a.kind,
      dataset: 'natwatch.alert',
      sequence: a.seq,
    },
    message: a.message,
  };
  if (key.prefix !== undefined) doc.rule = { name: key.prefix.trim() };
  if (key.natIp !== undefined) {
    // For local_port_exhaustion the key's address is the host's own source address.
    doc.source = a.kind === 'local_port_exhaustion' ? { ip: key.natIp } : { nat: { ip: key.natIp } };
  }
  if (key.dstIp != null) {
    doc.destination = key.dstPort == null || (key.proto != null && isIcmp(key.proto)) ? { ip: key.dstIp } : { ip: key.dstIp, port: key.dstPort };
  }
  if (key.proto != null) doc.network = network(key.proto);
  return doc;
}

export function statsToEcs(s: StatsMessage, ctx: EcsContext = defaultEcsContext()): Record<string, unknown> {
  const { type: _t, ts: _ts, ...rest } = s;
  return {
    ...base(ctx, s.ts, { type: 'stats', ...(snakeCase(rest) as Record<string, unknown>) }),
    event: { kind: 'metric', category: ['network'], type: ['info'], dataset: 'natwatch.stats' },
  };
}

const CT_TYPES: Record<ConntrackEvent['event'], string[]> = {
  new: ['connection', 'start'],
  update: ['connection'],
  destroy: ['connection', 'end'],
};

function conntrackToEcs(e: ConntrackEvent, ctx: EcsContext): Record<string, unknown> {
  const icmp = isIcmp(e.proto);
  const source: Record<string, unknown> = { ip: e.orig.src };
  const destination: Record<string, unknown> = { ip: e.orig.dst };
  if (!icmp) {
    source.port = e.orig.sport;
    destination.port = e.orig.dport;
  }
  // SNAT: the reply goes to the translated source. DNAT: the reply comes from the real destination.
  if (e.nat === 'snat' || e.nat === 'both') source.nat = icmp ? { ip: e.reply.dst } : { ip: e.reply.dst, port: e.reply.dport };
  if (e.nat === 'dnat' || e.nat === 'both') destination.nat = icmp ? { ip: e.reply.src } : { ip: e.reply.src, port: e.reply.sport };
  const { type: _t, ts: _ts, source: _s, ...rest } = e;
  return {
    ...base(ctx, e.ts, { type: 'event', source: 'conntrack', ...(snakeCase(rest) as Record<string, unknown>), ...(icmp ? { icmp_id: e.orig.sport } : {}) }, e),
    event: { kind: 'event', category: ['network'], type: CT_TYPES[e.event], action: e.event, dataset: 'natwatch.conntrack' },
    source,
    destination,
    network: network(e.proto, e.family),
  };
}

function nflogToEcs(e: NflogEvent, ctx: EcsContext): Record<string, unknown> {
  const icmp = isIcmp(e.proto);
  const name = e.prefix.trim();
  const denied = ctx.nflogDenies(e.group, e.prefix, e.netns) === true;
  const observer: Record<string, unknown> = {};
  if (e.indev) observer.ingress = { interface: { name: e.indev } };
  if (e.outdev) observer.egress = { interface: { name: e.outdev } };
  const { type: _t, ts: _ts, source: _s, ...rest } = e;
  const doc = base(ctx, e.ts, { type: 'event', source: 'nflog', ...(snakeCase(rest) as Record<string, unknown>), ...(icmp ? { icmp_id: e.sport } : {}) }, e);
  return {
    ...doc,
    observer: { ...(doc.observer as object), ...observer },
    event: { kind: 'event', category: ['network'], type: [denied ? 'denied' : 'info'], action: 'nflog', dataset: 'natwatch.nflog' },
    ...(name !== '' ? { rule: { name } } : {}),
    source: icmp ? { ip: e.src } : { ip: e.src, port: e.sport },
    destination: icmp ? { ip: e.dst } : { ip: e.dst, port: e.dport },
    network: network(e.proto, e.family),
  };
}

export function eventToEcs(e: WireEvent, ctx: EcsContext = defaultEcsContext()): Record<string, unknown> {
  return e.source === 'conntrack' ? conntrackToEcs(e, ctx) : nflogToEcs(e, ctx);
}

/**
 * Control messages (hello, gap, subscribed, error) as documents too: `event.kind: event`,
 * `event.dataset: natwatch.control`, `event.action` the message type, the message's fields
 * under natwatch.*.
 */
export function controlToEcs(msg: { type: string } & Record<string, unknown>, ctx: EcsContext = defaultEcsContext(), now = new Date()): Record<string, unknown> {
  const { type, ...rest } = msg;
  const doc: Record<string, unknown> = {
    ...base(ctx, now.toISOString(), { type, ...(snakeCase(rest) as Record<string, unknown>) }),
    event: { kind: 'event', dataset: 'natwatch.control', action: type },
  };
  if (type === 'error' && typeof msg.message === 'string') doc.message = msg.message;
  if (type === 'gap') doc.message = `${String(msg.dropped)} messages skipped (${String(msg.reason)})`;
  return doc;
}
