// Runs one lab scenario end to end: namespaces, rules, a watcher on the router, bounded
// traffic, the kernel's own account beside natwatch's, recovery, teardown. Teardown runs on
// every way out: normal end, error, SIGINT/SIGTERM (then exit 130/143), and as a last resort
// synchronously on process exit. Machine-wide sysctls go through sysctl-guard.
import { spawnSync } from 'node:child_process';
import type { Alert } from '../types.js';
import { guardSysctl, repairStale, type SysctlGuard } from './sysctl-guard.js';
import { createLab, type Lab } from './topology.js';
import { deltas, formatDeltas, reapWhile, snapshot } from './scenarios/kernel.js';
import { matchesKey, type Expectation, type Load, type Scenario } from './scenarios/types.js';

/** Lab runs want recovery in seconds, not the production quiet windows (src/alert/thresholds.ts). */
export const LAB_THRESHOLDS = { nflogQuietMs: 3_000, lossQuietMs: 3_000, dropsQuietMs: 3_000, minResyncMs: 500 };

/** What watches the router namespace: the in-process streamer, or a test's `serve` client. */
export interface LabWatcher {
  /** Every alert so far, oldest first. */
  readonly alerts: Alert[];
  onAlert(fn: (a: Alert) => void): void;
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
  let tornDown = false;

  const teardown = async (): Promise<string[]> => {
    if (tornDown) return [];
    tornDown = true;
    process.off('exit', lastResort);
    for (const s of ['SIGINT', 'SIGTERM'] as const) process.off(s, onSignal);
    await load?.release().catch(() => {});
    await watcher?.close().catch(() => {});
    for (const g of guards.reverse()) {
      g.restore();
      say('lab', `${g.key} restored to ${g.original}`);
    }
    if (!lab) return [];
    if (opts.keep) {
      const names = [lab.client, lab.router, lab.server];
      say('lab', `kept the namespaces; remove them with: ${names.map((n) => `ip netns del ${n}`).join('; ')}`);
      return names;
    }
    await lab.destroy();
    return [];
  };
  // Ctrl-C / kill: undo everything, then leave with the conventional code.
  function onSignal(signal: NodeJS.Signals): void {
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
    let firing: Alert | null = null;
    if (sc.expect) firing = await waitAlert(watcher, (a) => firingMatches(sc.expect!, a), waitMs);
    for (const line of await sc.verifyKernel(lab, before)) say('kernel', line);

    if (!sc.expect) {
      const doc = opts.doctor ? await opts.doctor(lab) : { ok: true, text: '' };
      for (const line of doc.text.split('\n').filter(Boolean)) say('doctor', line);
      result = doc.ok
        ? { ok: true, reason: 'the kernel kept tracking with no NAT rule left' + (opts.doctor ? ', and doctor said so' : '') }
        : { ok: false, reason: 'doctor did not report the leftover tracking' };
    } else if (!firing) {
      const seen = watcher.alerts.map(describeAlert).join('; ') || 'no alerts';
      result = { ok: false, reason: `no ${sc.expect.kind} alert matching ${JSON.stringify(sc.expect)} within ${waitMs} ms (seen: ${seen})` };
    } else {
      const released = Date.now();
      await load.release();
      say('traffic', 'client closed its connections');
      const after = await snapshot(lab, lab.router);
      say('kernel', `conntrack -S in R since the start: ${formatDeltas(deltas(before, after))}`);
      let resolved: Alert | null = null;
      if (sc.expect.resolves) {
        // Closed flows expire in R within a second or two, but the kernel only frees expired
        // entries (and sends DESTROY) at its next GC pass — up to a minute — or when a dump
        // meets them. The lab lists R's table each second so recovery shows up in seconds.
        say('kernel', "listing R's table each second so expired entries are reaped now, not at the next GC pass");
        const w = watcher;
        resolved = await reapWhile(lab, lab.router, waitAlert(w, (a) => resolvedMatches(sc.expect!, a), waitMs));
      }
      if (sc.expect.resolves && !resolved) {
        result = { ok: false, reason: `${describeAlert(firing)} fired but was not resolved within ${waitMs} ms of recovery` };
      } else {
        const after = resolved ? `, resolved ${((Date.parse(resolved.ts) - released) / 1000).toFixed(1)} s after the client closed` : '';
        result = { ok: true, reason: `natwatch raised ${describeAlert(firing)}${after}` };
      }
    }
  } catch (err) {
    result = { ok: false, reason: `scenario failed: ${(err as Error).message.split('\n')[0]}` };
  }
  const kept = await teardown();
  out(`  ${result.ok ? '✓' : '✗'} ${result.reason}`);
  return { name: sc.name, ...result, kept };
}
