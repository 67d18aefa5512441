// Alert thresholds and windows; every field can be overridden (config file / library options).
import { UsageError } from '../errors.js';

export interface Thresholds {
  /** Port kinds: utilization that raises a warning / a critical; firing ends below resolve. */
  portWarning: number;
  portCritical: number;
  portResolve: number;
  /** conntrack_table_full: count/max thresholds. */
  tableWarning: number;
  tableCritical: number;
  tableResolve: number;
  /** nflog_drop resolves after this long without packets for the key. */
  nflogQuietMs: number;
  /** conntrack_drops resolves after this long without unattributed drops. */
  dropsQuietMs: number;
  /**
   * event_loss resolves only after this many seconds without new loss (and, for conntrack
   * loss, after the resync dump ended): one episode per overload, not one per burst.
   */
  lossQuietSeconds: number;
  /** A firing alert whose drops grew is re-sent at most this often. */
  resendMs: number;
  /** Seconds of history behind the occupancy trend (ETA). */
  trendSeconds: number;
  /** Minimum spacing of table re-dumps after loss. */
  minResyncMs: number;
  /** A re-dump that has not ended after this long is given up and retried. */
  resyncTimeoutMs: number;
  /**
   * While a port alert fires, re-dump the table this often (0: never). The kernel frees an
   * expired entry's NAT port lazily (on a clashing lookup or a GC pass that can be a minute
   * away) and only then sends its DESTROY; a dump skips and reaps such entries, so the alert
   * resolves when the ports are really free again.
   */
  refreshDumpMs: number;
  /** ... but only while the table holds at most this many entries (a dump costs per entry). */
  refreshDumpMaxCount: number;
  /** Distinct NFLOG destinations tracked at once. */
  nflogMaxKeys: number;
  /** Per-destination nflog_drop alerts firing at once per (group, prefix); past it, one aggregate. */
  nflogMaxPerRule: number;
}

export const DEFAULT_THRESHOLDS: Thresholds = {
  portWarning: 0.8,
  portCritical: 0.95,
  portResolve: 0.7,
  tableWarning: 0.9,
  tableCritical: 0.95,
  tableResolve: 0.85,
  nflogQuietMs: 30_000,
  dropsQuietMs: 30_000,
  lossQuietSeconds: 10,
  resendMs: 5_000,
  trendSeconds: 30,
  minResyncMs: 2_000,
  resyncTimeoutMs: 30_000,
  refreshDumpMs: 10_000,
  refreshDumpMaxCount: 200_000,
  nflogMaxKeys: 10_000,
  nflogMaxPerRule: 20,
};

const NAMES = Object.keys(DEFAULT_THRESHOLDS) as Array<keyof Thresholds>;

/**
 * Defaults with `over` applied. Every name must be a known threshold (an own key: `constructor`
 * is not one) and every value a non-negative number; the first problem is a UsageError.
 */
export function thresholds(over: Partial<Thresholds> | Record<string, unknown> = {}): Thresholds {
  for (const k of Object.keys(over)) {
    if (!Object.hasOwn(DEFAULT_THRESHOLDS, k)) throw new UsageError(`threshold '${k.slice(0, 64)}' is unknown; valid: ${NAMES.join(', ')}`);
  }
  const t = { ...DEFAULT_THRESHOLDS, ...(over as Partial<Thresholds>) };
  for (const [k, v] of Object.entries(t)) {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) throw new UsageError(`threshold ${k}: ${JSON.stringify(v)?.slice(0, 64)} is not a non-negative number`);
  }
  if (!(t.portResolve < t.portWarning && t.portWarning <= t.portCritical)) throw new UsageError('thresholds: need portResolve < portWarning <= portCritical');
  if (!(t.tableResolve < t.tableWarning && t.tableWarning <= t.tableCritical)) throw new UsageError('thresholds: need tableResolve < tableWarning <= tableCritical');
  return t;
}
