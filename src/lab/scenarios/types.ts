// What a lab scenario is: rules and traffic that make the kernel fail in one classic way, the
// kernel-side evidence that it did, and the alert natwatch must raise. The runner (`natwatch
// lab`) and the end-to-end tests drive the same scenario objects; only the watcher differs
// (in-process streamer vs. a spawned `natwatch serve`).
import type { AlertKey, AlertKind, PortKey, Severity } from '../../types.js';
import type { Lab } from '../topology.js';

export type ScenarioName = 'port-exhaustion' | 'table-full' | 'nflog-drop' | 'flush' | 'loss';

/** The alert a scenario must produce, field by field as docs/protocol.md spells the alert. */
export interface Expectation {
  kind: AlertKind;
  /** Exact key; `natIp` may be left to `matchesKey` when it is only known after the traffic. */
  key: AlertKey;
  severity: Severity;
  /** Exact values where the scenario determines them; undefined = not asserted. */
  used?: number;
  capacity?: number;
  /** The kernel dropped packets here: the alert must carry drops > 0. */
  drops: boolean;
  /**
   * When a `resolved` with the same kind and key must follow: after the client lets go
   * ('after-release'), or while the load is still on ('by-itself': event_loss resolves once
   * a re-dump rebuilt the state).
   */
  resolves: 'after-release' | 'by-itself';
  /** Recovery is R's closed flows leaving the table (so the lab reaps expired entries promptly). */
  flowsExpire: boolean;
  /**
   * One overload must be one episode (a single firing..resolved) whose drops, less the events
   * natwatch lost itself (LossReport.dropped), equal the scenario's kernelDrops.
   */
  oneEpisode?: boolean;
}

/** A destination whose natwatch occupancy must equal the kernel's own flow count. */
export interface OccupancyCheck {
  key: PortKey;
  /** Flows for `key` in R's table (conntrack -L). */
  count(lab: Lab): Promise<number>;
}

/** Options for whatever watches the router (streamer in-process or `natwatch serve`). */
export interface WatchOptions {
  natPorts?: [number, number];
  nflogGroups?: number[];
  /** Tiny receive buffer to provoke loss (loss scenario). */
  rcvbufBytes?: number;
}

/** Traffic that keeps the failure in place until released. */
export interface Load {
  /** One line on what the traffic saw ("10 connected, 5 hung"). */
  summary: string;
  ok: number;
  failed: number;
  /** Ends the traffic (closes the client's sockets); idempotent. */
  release(): Promise<void>;
}

export interface Scenario {
  readonly name: ScenarioName;
  readonly title: string;
  /** Narration: what is being set up and why it fails. */
  readonly story: string;
  readonly ipv6: boolean;
  /** Machine-wide sysctls the runner must set (through sysctl-guard) and restore. */
  readonly globalSysctls: Record<string, string>;
  readonly watch: WatchOptions;
  /** Null: this scenario is checked by the kernel evidence and `doctor`, not by an alert. */
  readonly expect: Expectation | null;
  /** Rules, namespace-local sysctls and servers; nothing has been sent yet. */
  setup(lab: Lab): Promise<void>;
  /** Start the traffic; resolves once the failure is in place. */
  trigger(lab: Lab): Promise<Load>;
  /**
   * Read the kernel's own evidence (counter deltas since `before`, conntrack -L) and return
   * it as narration lines; throws when the kernel did not fail the way the scenario claims.
   */
  verifyKernel(lab: Lab, before: KernelSnapshot): Promise<string[]>;
  /** The kernel's own count of what the alert's `drops` stands for, to print beside it. */
  kernelDrops?(lab: Lab, before: KernelSnapshot): Promise<{ what: string; n: number }>;
  /** Checked while the load is on, after the expected alert (and, if 'by-itself', its resolve). */
  occupancy?: OccupancyCheck;
}

export interface KernelSnapshot {
  /** conntrack -S summed over CPUs. */
  counters: Record<string, number>;
  /** conntrack -C */
  count: number;
}

/** Does `key` (from an alert) equal `want` field by field? */
export function matchesKey(want: AlertKey, key: AlertKey): boolean {
  const w = want as Record<string, unknown>;
  const k = key as Record<string, unknown>;
  const names = new Set([...Object.keys(w), ...Object.keys(k)]);
  for (const n of names) if (w[n] !== k[n]) return false;
  return true;
}
