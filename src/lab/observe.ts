// What the lab sees while a scenario runs: natwatch's alerts as a watcher delivers them, and
// natwatch's occupancy held against the kernel's own flow count. Waits are bounded; none of
// this decides pass or fail (judge.ts does).
import type { Alert, TopEntry } from '../types.js';
import { endpoint } from '../endpoint.js';
import type { Lab } from './topology.js';
import { matchesKey, type Expectation, type OccupancyCheck, type Scenario } from './scenarios/types.js';

/** What watches the router namespace: the in-process streamer, or a test's `serve` client. */
export interface LabWatcher {
  /** Every alert so far, oldest first. */
  readonly alerts: Alert[];
  onAlert(fn: (a: Alert) => void): void;
  /** natwatch's current top destinations, when the watcher can tell (occupancy check). */
  top?(): TopEntry[];
  close(): Promise<void>;
}

export type WatchFactory = (lab: Lab, sc: Scenario) => Promise<LabWatcher>;

export interface OccupancyComparison {
  ok: boolean;
  line: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** First alert (past or future) matching `pred`, or null after `ms`. */
export async function waitAlert(w: LabWatcher, pred: (a: Alert) => boolean, ms: number): Promise<Alert | null> {
  const deadline = Date.now() + ms;
  let from = 0;
  while (Date.now() < deadline) {
    for (; from < w.alerts.length; from++) if (pred(w.alerts[from]!)) return w.alerts[from]!;
    await sleep(100);
  }
  for (; from < w.alerts.length; from++) if (pred(w.alerts[from]!)) return w.alerts[from]!;
  return null;
}

/**
 * For alerts that resolve on their own while the load is on (event_loss: loss, re-dump,
 * resolved — possibly several rounds): the last alert of that kind and key is `resolved` and
 * nothing new came for a second and a half.
 */
export async function waitSettled(w: LabWatcher, e: Expectation, ms: number): Promise<Alert | null> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const mine = w.alerts.filter((a) => a.kind === e.kind && matchesKey(e.key, a.key));
    const last = mine.at(-1);
    if (last?.state === 'resolved' && Date.now() - Date.parse(last.ts) >= 1_500) return last;
    await sleep(200);
  }
  return null;
}

/** natwatch's occupancy for a key against the kernel's flow count, polled until equal (≤ 10 s). */
export async function compareOccupancy(lab: Lab, w: LabWatcher, c: OccupancyCheck): Promise<OccupancyComparison | null> {
  if (!w.top) return null;
  let used = -1;
  let kernel = -1;
  const deadline = Date.now() + 10_000;
  do {
    kernel = await c.count(lab);
    used = w.top().find((t) => matchesKey(c.key, t.key))?.used ?? 0;
    if (used === kernel) break;
    await sleep(500);
  } while (Date.now() < deadline);
  const k = c.key;
  const dst = endpoint(k.dstIp, k.dstPort);
  return { ok: used === kernel, line: `${k.proto} ${k.natIp} → ${dst}: natwatch counts ${used} flows, conntrack -L lists ${kernel}` };
}
