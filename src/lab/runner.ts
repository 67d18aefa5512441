// Runs one lab scenario end to end: namespaces, rules, a watcher on the router, bounded
// traffic, the kernel's own account beside natwatch's, recovery, teardown. Teardown runs on
// every way out: normal end, error, SIGINT/SIGTERM (then exit 130/143), and as a last resort
// synchronously on process exit. Machine-wide sysctls go through sysctl-guard.
import { spawnSync } from 'node:child_process';
import type { Alert, TopEntry } from '../types.js';
import { endpoint } from '../endpoint.js';
import { guardSysctl, repairStale, type SysctlGuard } from './sysctl-guard.js';
import { createLab, type Lab } from './topology.js';
import { deltas, formatDeltas, reapWhile, snapshot } from './scenarios/kernel.js';
import { matchesKey, type Expectation, type Load, type OccupancyCheck, type Scenario } from './scenarios/types.js';

/** Lab runs want recovery in seconds, not the production quiet windows (src/alert/thresholds.ts). */
export const LAB_THRESHOLDS = { nflogQuietMs: 3_000, lossQuietSeconds: 3, dropsQuietMs: 3_000, minResyncMs: 500 };

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

export interface ScenarioResult {
  name: string;
  ok: boolean;
  /** One line: what was seen or what was missing. */
  reason: string;
  /** Namespaces left behind with --keep. */
  kept: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Does alert `a` satisfy the expectation (firing side)? */
function firingMatches(e: Expectation, a: Alert): boolean {
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

function resolvedMatches(e: Expectation, a: Alert): boolean {
  return a.kind === e.kind && a.state === 'resolved' && matchesKey(e.key, a.key);
}

/** First alert (past or future) matching `pred`, or null after `ms`. */
async function waitAlert(w: LabWatcher, pred: (a: Alert) => boolean, ms: number): Promise<Alert | null> {
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
async function waitSettled(w: LabWatcher, e: Expectation, ms: number): Promise<Alert | null> {
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
async function compareOccupancy(lab: Lab, w: LabWatcher, c: OccupancyCheck): Promise<{ ok: boolean; line: string } | null> {
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

function describeAlert(a: Alert): string {
  const load = a.used !== null && a.capacity !== null ? ` used=${a.used} capacity=${a.capacity}` : '';
  return `${a.kind} ${JSON.stringify(a.key)}${load} ${a.severity} drops=${a.drops}`;
}

export async function runScenario(sc: Scenario, opts: RunOptions): Promise<ScenarioResult> {
  const out = opts.out ?? ((l: string) => process.stdout.write(l + '\n'));
  const say = (tag: string, line: string) => out(`  ${tag.padEnd(8)}│ ${line}`);
  const waitMs = opts.waitMs ?? 15_000;
  let lab: Lab | null = null;
  let watcher: LabWatcher | null = null;
  let load: Load | null = null;
  const guards: SysctlGuard[] = [];
  let tearing: Promise<string[]> | null = null;
  let signalled = false;

  const teardown = (): Promise<string[]> => (tearing ??= undo());
  const undo = async (): Promise<string[]> => {
    await load?.release().catch(() => {});
    await watcher?.close().catch(() => {});
    for (const g of guards.reverse()) {
      g.restore();
      say('lab', `${g.key} restored to ${g.original}`);
    }
    let kept: string[] = [];
    if (lab && opts.keep) {
      await lab.stopPeers();
      kept = [lab.client, lab.router, lab.server];
      say('lab', `kept the namespaces; remove them with: ${kept.map((n) => `ip netns del ${n}`).join('; ')}`);
    } else if (lab) {
      await lab.destroy();
    }
    // Only now: a signal during teardown must find our handler, not the default action.
    process.off('exit', lastResort);
    for (const s of ['SIGINT', 'SIGTERM'] as const) process.off(s, onSignal);
    return kept;
  };
  // Ctrl-C / kill: undo everything, then leave with the conventional code. A second signal
  // while that runs is ignored rather than cutting the teardown short.
  function onSignal(signal: NodeJS.Signals): void {
    if (signalled) return;
    signalled = true;
    say('lab', `${signal}: tearing down`);
    void teardown().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  }
  // Exit without the async teardown (process.exit elsewhere): namespaces still go.
  function lastResort(): void {
    if (!lab || opts.keep) return;
    for (const ns of [lab.client, lab.router, lab.server]) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  }
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', lastResort);

  let result: { ok: boolean; reason: string };
  try {
    for (const key of repairStale()) say('lab', `${key} restored from a previous run that was killed`);
    out(`── ${sc.name}: ${sc.title} ──`);
    say('story', sc.story);
    lab = await createLab({ prefix: opts.prefix ?? 'nwlab', ipv6: sc.ipv6 });
    say('lab', `namespaces ${lab.client} (client) ${lab.router} (router) ${lab.server} (server)`);
    await sc.setup(lab);
    for (const [key, value] of Object.entries(sc.globalSysctls)) {
      const g = guardSysctl(key, value);
      guards.push(g);
      say('lab', `${key} lowered from ${g.original} to ${value} (machine-wide; restored at the end)`);
    }
    watcher = await opts.watch(lab, sc);
    const render = opts.render ?? describeAlert;
    watcher.onAlert((a) => say('natwatch', render(a)));
    say('natwatch', `watching ${lab.router}`);

    const before = await snapshot(lab, lab.router);
    load = await sc.trigger(lab);
    say('traffic', load.summary);
    const e = sc.expect;
    const firing = e ? await waitAlert(watcher, (a) => firingMatches(e, a), waitMs) : null;
    for (const line of await sc.verifyKernel(lab, before)) say('kernel', line);

    if (!e) {
      const doc = opts.doctor ? await opts.doctor(lab) : { ok: true, text: '' };
      for (const line of doc.text.split('\n').filter(Boolean)) say('doctor', line);
      result = doc.ok
        ? { ok: true, reason: 'the kernel kept tracking with no NAT rule left' + (opts.doctor ? ', and doctor said so' : '') }
        : { ok: false, reason: 'doctor did not report the leftover tracking' };
    } else if (!firing) {
      const seen = watcher.alerts.map(describeAlert).join('; ') || 'no alerts';
      result = { ok: false, reason: `no ${e.kind} alert matching ${JSON.stringify(e)} within ${waitMs} ms (seen: ${seen})` };
    } else {
      const w = watcher;
      const l = lab;
      let resolved: Alert | null = null;
      let since = Date.parse(firing.ts);
      if (e.resolves === 'by-itself') resolved = await waitSettled(w, e, waitMs);
      const occ = sc.occupancy ? await compareOccupancy(l, w, sc.occupancy) : null;
      if (occ) say('compare', occ.line);
      if (e.resolves === 'after-release') {
        since = Date.now();
        await load.release();
        say('traffic', 'client closed its connections');
        const done = waitAlert(w, (a) => resolvedMatches(e, a) && a.seq > firing.seq, waitMs);
        if (e.flowsExpire) {
          // Closed flows expire in R within a second or two, but the kernel only frees expired
          // entries (and sends DESTROY) at its next GC pass — up to a minute — or when a dump
          // meets them. The lab lists R's table each second so recovery shows up in seconds.
          say('kernel', "listing R's table each second so expired entries are reaped now, not at the next GC pass");
          resolved = await reapWhile(l, l.router, done);
        } else {
          resolved = await done;
        }
      }
      const last = resolved ?? firing;
      const k = sc.kernelDrops ? await sc.kernelDrops(l, before) : null;
      const kernelSide = k ? `kernel: ${k.what} = ${k.n}` : `kernel counters: ${formatDeltas(deltas(before, await snapshot(l, l.router)))}`;
      // Each resolved alert closes one episode with its own drop count: natwatch's side is
      // their sum (a scenario may require exactly one: event_loss under one overload).
      const episodes = w.alerts.filter((a) => a.kind === e.kind && matchesKey(e.key, a.key) && a.state === 'resolved');
      const drops = episodes.length > 0 ? episodes.reduce((n, a) => n + a.drops, 0) : last.drops;
      const across = episodes.length > 1 ? ` (${episodes.length} episodes)` : '';
      say('compare', `${kernelSide}; natwatch: ${last.kind} drops = ${drops}${across}`);
      const when = e.resolves === 'after-release' ? 'after the client closed' : 'after it fired, the load still on';
      // Records natwatch dropped in its own queue were delivered by the kernel: not in its count.
      const inQueue = episodes.reduce((n, a) => n + Number((a.detail as { conntrack?: { dropped?: number } } | undefined)?.conntrack?.dropped ?? 0), 0);
      if (!resolved) result = { ok: false, reason: `${describeAlert(firing)} fired but no resolved followed within ${waitMs} ms` };
      else if (e.oneEpisode && episodes.length !== 1) result = { ok: false, reason: `${episodes.length} ${e.kind} episodes for one overload, expected exactly one` };
      else if (e.oneEpisode && k && drops - inQueue !== k.n) result = { ok: false, reason: `natwatch counted ${drops - inQueue} (+${inQueue} in its queue), the kernel ${k.n}` };
      else if (occ && !occ.ok) result = { ok: false, reason: `occupancy mismatch: ${occ.line}` };
      else result = { ok: true, reason: `natwatch raised ${describeAlert(firing)}, resolved ${((Date.parse(resolved.ts) - since) / 1000).toFixed(1)} s ${when}` };
    }
  } catch (err) {
    result = { ok: false, reason: `scenario failed: ${(err as Error).message.split('\n')[0]}` };
  }
  const kept = await teardown();
  out(`  ${result.ok ? '✓' : '✗'} ${result.reason}`);
  return { name: sc.name, ...result, kept };
}
