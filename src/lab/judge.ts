// Pass or fail for one lab scenario, from what was observed: which alert satisfies the
// scenario's expectation, and the one-line verdict. Pure functions over alerts; no waiting.
import type { Alert } from '../types.js';
import type { OccupancyComparison } from './observe.js';
import { matchesKey, type Expectation } from './scenarios/types.js';

export interface Verdict {
  ok: boolean;
  /** One line: what was seen or what was missing. */
  reason: string;
}

/** Does alert `a` satisfy the expectation (firing side)? */
export function firingMatches(e: Expectation, a: Alert): boolean {
  return (
    a.kind === e.kind &&
    a.state === 'firing' &&
    matchesKey(e.key, a.key) &&
    a.severity === e.severity &&
    (e.used === undefined || a.used === e.used) &&
    (e.capacity === undefined || a.capacity === e.capacity) &&
    (!e.drops || a.drops > 0)
  );
}

export function resolvedMatches(e: Expectation, a: Alert): boolean {
  return a.kind === e.kind && a.state === 'resolved' && matchesKey(e.key, a.key);
}

export function describeAlert(a: Alert): string {
  const load = a.used !== null && a.capacity !== null ? ` used=${a.used} capacity=${a.capacity}` : '';
  return `${a.kind} ${JSON.stringify(a.key)}${load} ${a.severity} drops=${a.drops}`;
}

/** A scenario without an expected alert (flush) passes on the kernel's evidence and doctor's word. */
export function judgeWithoutAlert(doc: { ok: boolean }, askedDoctor: boolean): Verdict {
  return doc.ok
    ? { ok: true, reason: 'the kernel kept tracking with no NAT rule left' + (askedDoctor ? ', and doctor said so' : '') }
    : { ok: false, reason: 'doctor did not report the leftover tracking' };
}

export function judgeNotFired(e: Expectation, alerts: readonly Alert[], waitMs: number): Verdict {
  const seen = alerts.map(describeAlert).join('; ') || 'no alerts';
  return { ok: false, reason: `no ${e.kind} alert matching ${JSON.stringify(e)} within ${waitMs} ms (seen: ${seen})` };
}

/**
 * natwatch's side of the drop count. Each resolved alert closes one episode with its own drop
 * count, so natwatch's side is their sum (a scenario may require exactly one: event_loss under
 * one overload). Events natwatch lost itself (LossReport.dropped: a truncated datagram, no
 * memory for a batch) were delivered by the kernel: they are counted apart (`inQueue`) so the
 * sum can be held against the kernel's.
 */
export function natwatchDrops(e: Expectation, alerts: readonly Alert[], last: Alert): { drops: number; episodes: number; inQueue: number } {
  const episodes = alerts.filter((a) => a.kind === e.kind && matchesKey(e.key, a.key) && a.state === 'resolved');
  const drops = episodes.length > 0 ? episodes.reduce((n, a) => n + a.drops, 0) : last.drops;
  const inQueue = episodes.reduce((n, a) => n + Number((a.detail as { conntrack?: { dropped?: number } } | undefined)?.conntrack?.dropped ?? 0), 0);
  return { drops, episodes: episodes.length, inQueue };
}

export interface FiredRun {
  e: Expectation;
  firing: Alert;
  resolved: Alert | null;
  /** When recovery was timed from (the firing, or the client's release). */
  since: number;
  occ: OccupancyComparison | null;
  /** natwatch's drop count (natwatchDrops) and the kernel's own, when the scenario reads it. */
  counted: { drops: number; episodes: number; inQueue: number };
  kernel: { what: string; n: number } | null;
  waitMs: number;
}

export function judgeFired(r: FiredRun): Verdict {
  const { e, counted, kernel } = r;
  const when = e.resolves === 'after-release' ? 'after the client closed' : 'after it fired, the load still on';
  if (!r.resolved) return { ok: false, reason: `${describeAlert(r.firing)} fired but no resolved followed within ${r.waitMs} ms` };
  if (e.oneEpisode && counted.episodes !== 1) return { ok: false, reason: `${counted.episodes} ${e.kind} episodes for one overload, expected exactly one` };
  if (e.oneEpisode && kernel && counted.drops - counted.inQueue !== kernel.n) {
    return { ok: false, reason: `natwatch counted ${counted.drops - counted.inQueue} (+${counted.inQueue} in its queue), the kernel ${kernel.n}` };
  }
  if (r.occ && !r.occ.ok) return { ok: false, reason: `occupancy mismatch: ${r.occ.line}` };
  const secs = ((Date.parse(r.resolved.ts) - r.since) / 1000).toFixed(1);
  return { ok: true, reason: `natwatch raised ${describeAlert(r.firing)}, resolved ${secs} s ${when}` };
}
