// Elastic Common Schema documents for the `ecs` stream format, so an alert can be shipped to
// Elasticsearch / a SIEM as is. ECS fields where ECS has one; everything else under `natwatch.*`.
// Control messages (hello, gap, subscribed, error) are not documents and keep their own shape.
import type { Alert, PortKey, NflogKey, StatsMessage, WireEvent } from '../types.js';

/**
 * event.severity is numeric and source-defined in ECS; these follow the scale of Elastic's
 * detection rules (47 medium, 73 high) so dashboards sort alerts sensibly.
 */
/** The ECS release these documents follow. */
const ECS_VERSION = '8.11.0';

export const ECS_SEVERITY = { warning: 47, critical: 73 } as const;

export function alertToEcs(a: Alert): Record<string, unknown> {
  const key = a.key as Partial<PortKey & NflogKey>;
  const doc: Record<string, unknown> = {
    '@timestamp': a.ts,
    ecs: { version: ECS_VERSION },
    event: {
      kind: 'alert',
      category: ['network'],
      // nflog drops are packets the ruleset denied; the rest start (firing) or end (resolved).
      type: a.kind === 'nflog_drop' ? ['denied'] : [a.state === 'firing' ? 'start' : 'end'],
      severity: ECS_SEVERITY[a.severity],
      action: a.kind,
      dataset: 'natwatch.alert',
      sequence: a.seq,
    },
    message: a.message,
    natwatch: {
      type: 'alert',
      seq: a.seq,
      kind: a.kind,
      severity: a.severity,
      state: a.state,
      key: a.key,
      used: a.used,
      capacity: a.capacity,
      utilization: a.utilization,
      drops: a.drops,
      ...(a.etaSeconds !== undefined ? { etaSeconds: a.etaSeconds } : {}),
      ...(a.capacitySource !== undefined ? { capacitySource: a.capacitySource, capacityReason: a.capacityReason ?? null } : {}),
      ...(a.detail !== undefined ? { detail: a.detail } : {}),
    },
  };
  if (key.natIp !== undefined) {
    // For local_port_exhaustion the key's address is the host's own source address.
    doc.source = a.kind === 'local_port_exhaustion' ? { ip: key.natIp } : { nat: { ip: key.natIp } };
  }
  if (key.dstIp !== undefined) doc.destination = { ip: key.dstIp, port: key.dstPort };
  if (key.proto !== undefined) doc.network = { transport: key.proto };
  return doc;
}

export function statsToEcs(s: StatsMessage): Record<string, unknown> {
  return {
    '@timestamp': s.ts,
    ecs: { version: ECS_VERSION },
    event: { kind: 'metric', category: ['network'], type: ['info'], dataset: 'natwatch.stats' },
    natwatch: { type: 'stats', conntrack: s.conntrack, counters: s.counters, rates: s.rates, top: s.top },
  };
}

export function eventToEcs(e: WireEvent): Record<string, unknown> {
  const base = {
    '@timestamp': e.ts,
    ecs: { version: ECS_VERSION },
  };
  if (e.source === 'conntrack') {
    const nat = e.nat === 'snat' || e.nat === 'both' ? { nat: { ip: e.reply.dst, port: e.reply.dport } } : {};
    return {
      ...base,
      event: { kind: 'event', category: ['network'], type: ['connection'], action: e.event, dataset: 'natwatch.conntrack' },
      source: { ip: e.orig.src, port: e.orig.sport, ...nat },
      destination: { ip: e.orig.dst, port: e.orig.dport },
      network: { transport: e.proto, type: e.family },
      natwatch: e,
    };
  }
  return {
    ...base,
    event: { kind: 'event', category: ['network'], type: ['denied'], action: 'nflog', dataset: 'natwatch.nflog' },
    source: { ip: e.src, port: e.sport },
    destination: { ip: e.dst, port: e.dport },
    network: { transport: e.proto, type: e.family },
    observer: { ingress: { interface: { name: e.indev } }, egress: { interface: { name: e.outdev } } },
    natwatch: e,
  };
}
