// natwatch alerts as Alertmanager API v2 alerts (POST /api/v2/alerts): labels identify the
// alert (Alertmanager deduplicates on them), annotations carry the numbers.
import type { Alert } from '../types.js';
import { alertName, keyLabels, netnsLabels, netnsOf } from '../server/labels.js';

/** One element of the POST /api/v2/alerts body. */
export interface AmAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  generatorURL?: string;
}

export interface LabelContext {
  /** `instance` label: the host name or `--instance NAME`. */
  instance: string;
  /** The namespace the streamer watches (null: natwatch's own; no label then). */
  netns: string | null;
}

/** Labels of an alert: alertname (CamelCase kind), kind, severity, instance, netns, key. */
export function amLabels(a: Alert, ctx: LabelContext): Record<string, string> {
  return {
    alertname: alertName(a.kind),
    kind: a.kind,
    severity: a.severity,
    instance: ctx.instance,
    // The alert's own namespace when it names one (multi-namespace streamers), else the streamer's.
    ...netnsLabels(netnsOf(a, ctx.netns)),
    ...keyLabels(a.key),
  };
}

export function amAnnotations(a: Alert): Record<string, string> {
  const out: Record<string, string> = { summary: a.message };
  if (a.used !== null) out.used = String(a.used);
  if (a.capacity !== null) out.capacity = String(a.capacity);
  out.drops = String(a.drops);
  if (a.etaSeconds !== undefined && a.etaSeconds !== null) out.eta_seconds = String(Math.round(a.etaSeconds));
  return out;
}

/** A stable identity for the labels (Alertmanager's own notion of "the same alert"). */
export function fingerprint(labels: Record<string, string>): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}
