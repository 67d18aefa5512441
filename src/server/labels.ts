// Label sets shared by /metrics and the Alertmanager push, so both name a namespace and an
// alert key the same way: snake_case keys, `netns` only for a namespace other than natwatch's
// own (no label at all for its own, so single-namespace series stay as they were).
import { netnsName as nameOfPath } from '../netns.js';
import type { AlertKey, AlertKind } from '../types.js';

/** The name a namespace is shown under: NAME for /var/run/netns/NAME, the path otherwise. */
export function netnsName(netns: string | null | undefined): string | null {
  if (netns === null || netns === undefined || netns === '') return null;
  return nameOfPath(netns);
}

/** `{netns: NAME}` for a watched namespace, `{}` for natwatch's own. */
export function netnsLabels(netns: string | null | undefined): { netns?: string } {
  const name = netnsName(netns);
  return name === null ? {} : { netns: name };
}

/**
 * The namespace a message is about: its own `netns` field when it has one (alerts, events and
 * top entries of a multi-namespace streamer carry it), else the streamer's.
 */
export function netnsOf(item: object | null | undefined, fallback: string | null): string | null {
  if (item && 'netns' in item) {
    const v = (item as { netns?: unknown }).netns;
    if (typeof v === 'string' || v === null) return v;
  }
  return fallback;
}

/** Label names of an alert key, in key order: proto, nat_ip, dst_ip, dst_port | prefix, group, …. */
export const PORT_KEY_LABELS = ['proto', 'nat_ip', 'dst_ip', 'dst_port'] as const;
export const NFLOG_KEY_LABELS = ['prefix', 'group', 'proto', 'dst_ip', 'dst_port'] as const;

const snake = (s: string): string => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** An alert key as snake_case string labels (`natIp` → `nat_ip`); values as text. */
export function keyLabels(key: AlertKey | Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(key)) {
    if (v === null || v === undefined) continue;
    // Trimmed: an NFLOG prefix is written with a trailing space to separate it in the log.
    out[snake(k)] = String(v).trim();
  }
  return out;
}

/** `nat_port_exhaustion` → `NatPortExhaustion` (Alertmanager's alertname). */
export function alertName(kind: AlertKind | string): string {
  return kind
    .split('_')
    .filter(Boolean)
    .map((w) => w[0]!.toUpperCase() + w.slice(1))
    .join('');
}
