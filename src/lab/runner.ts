// Runs one lab scenario end to end: a session (namespaces, rules, guarded sysctls, teardown on
// every way out: session.ts), a watcher on the router, bounded traffic, what natwatch and the
// kernel each saw (observe.ts), and the verdict (judge.ts).
import type { Alert } from '../types.js';
import type { Lab } from './topology.js';
import { deltas, formatDeltas, reapWhile, snapshot } from './scenarios/kernel.js';
import type { Scenario } from './scenarios/types.js';
import { LabSession } from './session.js';
import { compareOccupancy, waitAlert, waitSettled, type WatchFactory } from './observe.js';
import {
  describeAlert,
  firingMatches,
  judgeFired,
  judgeNotFired,
  judgeWithoutAlert,
  natwatchDrops,
  resolvedMatches,
  type Verdict,
} from './judge.js';

export type { LabWatcher, WatchFactory } from './observe.js';

/** Lab runs want recovery in seconds, not the production quiet windows (src/alert/thresholds.ts). */
export const LAB_THRESHOLDS = { nflogQuietMs: 3_000, lossQuietSeconds: 3, dropsQuietMs: 3_000, minResyncMs: 500 };

export interface RunOptions {
  watch: WatchFactory;
  /** Namespace name prefix (a random suffix is added). */
  prefix?: string;
  /** Leave the namespaces (their `ip netns del` commands are printed). */
  keep?: boolean;
  out?: (line: string) => void;
  /** Renders an alert for the live view. */
  render?: (a: Alert) => string;
  /** Bound on each wait for an alert. */
  waitMs?: number;
  /** Extra check for scenarios without an expected alert (flush: `natwatch doctor`). */
  doctor?: (lab: Lab) => Promise<{ ok: boolean; text: string }>;
}

export interface ScenarioResult extends Verdict {
  name: string;
  /** Namespaces left behind with --keep. */
  kept: string[];
}

export async function runScenario(sc: Scenario, opts: RunOptions): Promise<ScenarioResult> {
  const out = opts.out ?? ((l: string) => process.stdout.write(l + '\n'));
  const say = (tag: string, line: string) => out(`  ${tag.padEnd(8)}│ ${line}`);
  const waitMs = opts.waitMs ?? 15_000;
  const session = new LabSession(opts.keep ?? false, say);

  let result: Verdict;
  try {
    session.repairStale();
    out(`── ${sc.name}: ${sc.title} ──`);
    say('story', sc.story);
    const lab = await session.build(sc, opts.prefix ?? 'nwlab');
    const watcher = (session.watcher = await opts.watch(lab, sc));
    const render = opts.render ?? describeAlert;
    watcher.onAlert((a) => say('natwatch', render(a)));
    say('natwatch', `watching ${lab.router}`);

    const before = await snapshot(lab, lab.router);
    const load = (session.load = await sc.trigger(lab));
    say('traffic', load.summary);
    const e = sc.expect;
    const firing = e ? await waitAlert(watcher, (a) => firingMatches(e, a), waitMs) : null;
    for (const line of await sc.verifyKernel(lab, before)) say('kernel', line);

    if (!e) {
      const doc = opts.doctor ? await opts.doctor(lab) : { ok: true, text: '' };
      for (const line of doc.text.split('\n').filter(Boolean)) say('doctor', line);
      result = judgeWithoutAlert(doc, opts.doctor !== undefined);
    } else if (!firing) {
      result = judgeNotFired(e, watcher.alerts, waitMs);
    } else {
      let resolved: Alert | null = null;
      let since = Date.parse(firing.ts);
      if (e.resolves === 'by-itself') resolved = await waitSettled(watcher, e, waitMs);
      const occ = sc.occupancy ? await compareOccupancy(lab, watcher, sc.occupancy) : null;
      if (occ) say('compare', occ.line);
      if (e.resolves === 'after-release') {
        since = Date.now();
        await load.release();
        say('traffic', 'client closed its connections');
        const done = waitAlert(watcher, (a) => resolvedMatches(e, a) && a.seq > firing.seq, waitMs);
        if (e.flowsExpire) {
          // Closed flows expire in R within a second or two, but the kernel only frees expired
          // entries (and sends DESTROY) at its next GC pass — up to a minute — or when a dump
          // meets them. The lab lists R's table each second so recovery shows up in seconds.
          say('kernel', "listing R's table each second so expired entries are reaped now, not at the next GC pass");
          resolved = await reapWhile(lab, lab.router, done);
        } else {
          resolved = await done;
        }
      }
      const last = resolved ?? firing;
      const k = sc.kernelDrops ? await sc.kernelDrops(lab, before) : null;
      const kernelSide = k ? `kernel: ${k.what} = ${k.n}` : `kernel counters: ${formatDeltas(deltas(before, await snapshot(lab, lab.router)))}`;
      const counted = natwatchDrops(e, watcher.alerts, last);
      const across = counted.episodes > 1 ? ` (${counted.episodes} episodes)` : '';
      say('compare', `${kernelSide}; natwatch: ${last.kind} drops = ${counted.drops}${across}`);
      result = judgeFired({ e, firing, resolved, since, occ, counted, kernel: k, waitMs });
    }
  } catch (err) {
    result = { ok: false, reason: `scenario failed: ${(err as Error).message.split('\n')[0]}` };
  }
  const kept = await session.teardown();
  out(`  ${result.ok ? '✓' : '✗'} ${result.reason}`);
  return { name: sc.name, ...result, kept };
}
