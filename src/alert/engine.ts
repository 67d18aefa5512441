// The alert engine: rules tell it what they see each tick; it decides what is sent.
// - one alert per (kind, key): a firing alert is re-sent only when its severity escalates or
//   its drops grew (then at most once per `resendMs`), never on every tick;
// - severity never de-escalates while firing (the rule's resolve threshold ends it);
// - seq strictly increasing, ts ISO-8601 UTC with ms, a bounded ring for replay (since=SEQ).
import type { Alert, AlertKey, AlertKind, CapacitySource, Severity } from '../types.js';
import type { Clock } from './clock.js';

/** What a rule observed for one key this tick. */
export interface Observation {
  used: number | null;
  capacity: number | null;
  /** Drops attributed to the key since the previous observation (added to the alert's total). */
  dropsDelta: number;
  etaSeconds?: number | null;
  /** Where the capacity came from (port kinds): see CapacitySource. */
  capacitySource?: CapacitySource;
  capacityReason?: string | null;
  /** nflog_drop aggregates: distinct destinations (Alert.destinations). */
  destinations?: number;
  detail?: Record<string, unknown>;
  /** The message, given the alert's drops total and severity. */
  message: (drops: number, severity: Severity) => string;
  /** The namespace the alert is about (null or absent: natwatch's own); see AlertScope. */
  netns?: string | null;
}

/** What a rule calls: the engine, or one namespace's scope of it (src/alert/scope.ts). */
export type AlertSink = Pick<AlertEngine, 'observe' | 'resolve' | 'isFiring'>;

interface Live {
  alert: Alert;
  lastSentMs: number;
  lastSentDrops: number;
}

const RANK: Record<Severity, number> = { warning: 1, critical: 2 };

export class AlertEngine {
  private seqNo = 0;
  private readonly live = new Map<string, Live>();
  private readonly ring: Array<Alert | undefined>;
  private ringNext = 0;

  constructor(
    private readonly clock: Clock,
    private readonly emit: (a: Alert) => void,
    /** Read on every decision: the streamer's thresholds object, changed in place on SIGHUP. */
    private readonly t: { readonly resendMs: number } = { resendMs: 5000 },
    ringSize = 1000,
  ) {
    this.ring = new Array<Alert | undefined>(ringSize);
  }

  get seq(): number {
    return this.seqNo;
  }

  static id(kind: AlertKind, key: string): string {
    return `${kind}|${key}`;
  }

  isFiring(kind: AlertKind, key: string): boolean {
    return this.live.has(AlertEngine.id(kind, key));
  }

  /**
   * The rule says the condition holds at `severity` (or, with null, that it still holds at
   * whatever severity it fired with: the hysteresis band). A null for a key not firing is a no-op.
   */
  observe(kind: AlertKind, keyId: string, key: AlertKey, severity: Severity | null, o: Observation): void {
    const id = AlertEngine.id(kind, keyId);
    const cur = this.live.get(id);
    if (!cur) {
      if (severity === null) return;
      const a = this.build(kind, key, severity, o, o.dropsDelta);
      this.live.set(id, { alert: a, lastSentMs: 0, lastSentDrops: 0 });
      this.send(this.live.get(id)!);
      return;
    }
    const prev = cur.alert;
    const sev = severity !== null && RANK[severity] > RANK[prev.severity] ? severity : prev.severity;
    const a = this.build(kind, key, sev, o, prev.drops + o.dropsDelta);
    a.seq = prev.seq;
    a.ts = prev.ts;
    cur.alert = a;
    const escalated = sev !== prev.severity;
    const dropsGrew = a.drops > cur.lastSentDrops && this.clock.now() - cur.lastSentMs >= this.t.resendMs;
    if (escalated || dropsGrew) this.send(cur);
  }

  /** The condition is over: send `resolved` (with the latest numbers) if it was firing. */
  resolve(kind: AlertKind, keyId: string, o?: Partial<Observation>): void {
    const id = AlertEngine.id(kind, keyId);
    const cur = this.live.get(id);
    if (!cur) return;
    this.live.delete(id);
    const prev = cur.alert;
    const a: Alert = { ...prev, state: 'resolved' };
    if (o?.used !== undefined) a.used = o.used;
    if (o?.capacity !== undefined) a.capacity = o.capacity;
    a.utilization = ratio(a.used, a.capacity);
    if (o?.dropsDelta) a.drops += o.dropsDelta;
    if (o?.detail) a.detail = o.detail;
    if (a.etaSeconds !== undefined) a.etaSeconds = null;
    a.message = o?.message ? o.message(a.drops, a.severity) : `resolved: ${prev.message}`;
    this.stamp(a);
    this.emit(a);
  }

  /** Firing alerts, latest numbers, each with the seq it was last sent under. */
  firing(): Alert[] {
    return [...this.live.values()].map((l) => ({ ...l.alert }));
  }

  alertsSince(since: number): Alert[] {
    const out: Alert[] = [];
    const n = this.ring.length;
    for (let i = 0; i < n; i++) {
      const a = this.ring[(this.ringNext + i) % n];
      if (a && a.seq > since) out.push(a);
    }
    return out;
  }

  private build(kind: AlertKind, key: AlertKey, severity: Severity, o: Observation, drops: number): Alert {
    const a: Alert = {
      type: 'alert',
      seq: 0,
      ts: '',
      kind,
      severity,
      state: 'firing',
      netns: o.netns ?? null,
      key,
      used: o.used,
      capacity: o.capacity,
      utilization: ratio(o.used, o.capacity),
      drops,
      message: o.message(drops, severity),
    };
    if (o.etaSeconds !== undefined) a.etaSeconds = o.etaSeconds;
    if (o.capacitySource !== undefined) {
      a.capacitySource = o.capacitySource;
      a.capacityReason = o.capacityReason ?? null;
    }
    if (o.destinations !== undefined) a.destinations = o.destinations;
    if (o.detail !== undefined) a.detail = o.detail;
    return a;
  }

  private send(l: Live): void {
    this.stamp(l.alert);
    l.lastSentMs = this.clock.now();
    l.lastSentDrops = l.alert.drops;
    this.emit({ ...l.alert });
  }

  private stamp(a: Alert): void {
    a.seq = ++this.seqNo;
    a.ts = new Date(this.clock.now()).toISOString();
    this.ring[this.ringNext] = { ...a };
    this.ringNext = (this.ringNext + 1) % this.ring.length;
  }
}

function ratio(used: number | null, capacity: number | null): number | null {
  if (used === null || capacity === null || capacity <= 0) return null;
  return Math.min(used / capacity, 1);
}
