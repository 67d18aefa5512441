// One lab run's lifetime: the namespaces, the scenario's rules, machine-wide sysctls lowered
// through sysctl-guard, the watcher and the load, and their teardown. Teardown runs once on
// every way out: normal end, error, SIGINT/SIGTERM (then exit 130/143), and as a last resort
// synchronously on process exit.
import { spawnSync } from 'node:child_process';
import { guardSysctl, repairStale, type SysctlGuard } from './sysctl-guard.js';
import { createLab, type Lab } from './topology.js';
import type { LabWatcher } from './observe.js';
import type { Load, Scenario } from './scenarios/types.js';

/** Narration: a tag column and a line. */
export type Say = (tag: string, line: string) => void;

export class LabSession {
  lab: Lab | null = null;
  watcher: LabWatcher | null = null;
  load: Load | null = null;
  private readonly guards: SysctlGuard[] = [];
  private tearing: Promise<string[]> | null = null;
  private signalled = false;

  constructor(
    private readonly keep: boolean,
    private readonly say: Say,
  ) {
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
    process.on('exit', this.lastResort);
  }

  /** Sysctls a killed earlier run left lowered go back first. */
  repairStale(): void {
    for (const key of repairStale()) this.say('lab', `${key} restored from a previous run that was killed`);
  }

  /** Namespaces, the scenario's own setup, then its machine-wide sysctls (guarded). */
  async build(sc: Scenario, prefix: string): Promise<Lab> {
    const lab = await createLab({ prefix, ipv6: sc.ipv6 });
    this.lab = lab;
    this.say('lab', `namespaces ${lab.client} (client) ${lab.router} (router) ${lab.server} (server)`);
    await sc.setup(lab);
    for (const [key, value] of Object.entries(sc.globalSysctls)) {
      const g = guardSysctl(key, value);
      this.guards.push(g);
      this.say('lab', `${key} lowered from ${g.original} to ${value} (machine-wide; restored at the end)`);
    }
    return lab;
  }

  /** Undo everything once; later calls share the first. Resolves to the namespaces kept. */
  teardown(): Promise<string[]> {
    return (this.tearing ??= this.undo());
  }

  private async undo(): Promise<string[]> {
    await this.load?.release().catch(() => {});
    await this.watcher?.close().catch(() => {});
    for (const g of this.guards.reverse()) {
      g.restore();
      this.say('lab', `${g.key} restored to ${g.original}`);
    }
    let kept: string[] = [];
    const lab = this.lab;
    if (lab && this.keep) {
      await lab.stopPeers();
      kept = [lab.client, lab.router, lab.server];
      this.say('lab', `kept the namespaces; remove them with: ${kept.map((n) => `ip netns del ${n}`).join('; ')}`);
    } else if (lab) {
      await lab.destroy();
    }
    // Only now: a signal during teardown must find our handler, not the default action.
    process.off('exit', this.lastResort);
    for (const s of ['SIGINT', 'SIGTERM'] as const) process.off(s, this.onSignal);
    return kept;
  }

  // Ctrl-C / kill: undo everything, then leave with the conventional code. A second signal
  // while that runs is ignored rather than cutting the teardown short.
  private readonly onSignal = (signal: NodeJS.Signals): void => {
    if (this.signalled) return;
    this.signalled = true;
    this.say('lab', `${signal}: tearing down`);
    void this.teardown().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };

  // Exit without the async teardown (process.exit elsewhere): namespaces still go.
  private readonly lastResort = (): void => {
    const lab = this.lab;
    if (!lab || this.keep) return;
    for (const ns of [lab.client, lab.router, lab.server]) spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
  };
}
