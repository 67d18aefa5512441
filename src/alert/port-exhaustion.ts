// nat_port_exhaustion / local_port_exhaustion: a key's live flows against its port capacity.
// warning at >= portWarning (with an ETA from the occupancy trend), critical at >= portCritical
// or when the kernel drops new connections while the key is at capacity; resolved below
// portResolve. Kernel drop counters are per namespace, not per key: a tick's drops are split
// over the keys at capacity at that moment (the only keys whose new connections the kernel
// cannot place).
import { endpoint } from '../endpoint.js';
import type { PortKey, Severity } from '../types.js';
import type { KeyTable } from '../track/key-table.js';
import type { AlertSink } from './engine.js';
import type { Thresholds } from './thresholds.js';

export interface PortTick {
  nowSec: number;
  /** New-connection drops this tick: max(Δinsert_failed, Δdrop) (both count one failed insert). */
  drops: number;
}

export interface PortResult {
  /** Keys at capacity this tick. */
  atCapacity: number;
  /** Drops attributed to them. */
  attributed: number;
}

export class PortExhaustionRule {
  /** key id → key string, for keys this rule has firing (ids are reused after release). */
  private readonly firing = new Map<number, string>();
  private readonly atCap: number[] = [];

  constructor(
    private readonly keys: KeyTable,
    private readonly engine: AlertSink,
    private readonly t: Thresholds,
  ) {}

  /** Keys with an alert firing. */
  get firingCount(): number {
    return this.firing.size;
  }

  evaluate(tick: PortTick): PortResult {
    const keys = this.keys;
    const atCap = this.atCap;
    atCap.length = 0;
    const cand: number[] = [];
    keys.forEachBusy((k, used, cap) => {
      if (cap <= 0) return;
      if (used >= cap) atCap.push(k);
      if (used >= cap * this.t.portWarning && !this.firing.has(k)) cand.push(k);
    });
    let attributed = 0;
    const share = new Map<number, number>();
    if (tick.drops > 0 && atCap.length > 0) {
      const each = Math.floor(tick.drops / atCap.length);
      let extra = tick.drops - each * atCap.length;
      for (const k of atCap) {
        const n = each + (extra-- > 0 ? 1 : 0);
        if (n === 0) continue;
        share.set(k, n);
        keys.addDrops(k, tick.nowSec, n);
        attributed += n;
      }
    }
    for (const [k, str] of this.firing) {
      if (keys.identity(k) !== str) {
        // The key was forgotten (idle and evicted): its flows are gone.
        this.firing.delete(k);
        this.engine.resolve(kindOf(str), str, { used: 0 });
        continue;
      }
      this.judge(k, tick, share.get(k) ?? 0);
    }
    for (const k of cand) this.judge(k, tick, share.get(k) ?? 0);
    // Drops at capacity make a key critical whatever its thresholds.
    for (const [k, n] of share) if (!this.firing.has(k)) this.judge(k, tick, n);
    return { atCapacity: atCap.length, attributed };
  }

  private judge(k: number, tick: PortTick, drops: number): void {
    const keys = this.keys;
    const used = keys.used(k);
    const cap = keys.capacityOf(k);
    const util = cap > 0 ? used / cap : 0;
    const str = keys.identity(k);
    const kind = kindOf(str);
    let sev: Severity | null = null;
    if (util >= this.t.portCritical || (used >= cap && drops > 0)) sev = 'critical';
    else if (util >= this.t.portWarning) sev = 'warning';
    else if (util < this.t.portResolve) {
      this.firing.delete(k);
      this.engine.resolve(kind, str, { used, capacity: cap, dropsDelta: drops });
      return;
    }
    let eta: number | null = null;
    if (used >= cap) eta = 0;
    else {
      const slope = keys.trend(k, tick.nowSec, this.t.trendSeconds);
      if (slope > 0) eta = Math.round((cap - used) / slope);
    }
    const key = keys.key(k);
    const addrs = keys.natAddrs(k);
    const src = keys.capacityInfo(k);
    this.firing.set(k, str);
    this.engine.observe(kind, str, key, sev, {
      used,
      capacity: cap,
      capacitySource: src.source,
      capacityReason: src.reason,
      dropsDelta: drops,
      etaSeconds: eta,
      message: (total, severity) => portMessage(kind === 'local_port_exhaustion', key, used, cap, total, severity, eta, addrs),
    });
  }
}

const kindOf = (keyStr: string) => (keyStr.endsWith('|L') ? 'local_port_exhaustion' : 'nat_port_exhaustion') as
  | 'local_port_exhaustion'
  | 'nat_port_exhaustion';

function portMessage(
  local: boolean,
  key: PortKey,
  used: number,
  cap: number,
  drops: number,
  severity: Severity,
  eta: number | null,
  addrs: number,
): string {
  const what = local
    ? `Local source ports from ${key.natIp} to ${key.proto} ${endpoint(key.dstIp, key.dstPort)}`
    : `NAT source ports for ${key.proto} ${key.natIp} → ${endpoint(key.dstIp, key.dstPort)}`;
  const state = used >= cap ? 'are exhausted' : `are ${Math.floor((used / cap) * 100)}% used`;
  let numbers = `${used}/${cap} in use`;
  if (drops > 0) numbers += `, ${drops} connection attempt${drops === 1 ? '' : 's'} dropped`;
  else if (severity === 'warning' && eta !== null && eta > 0) numbers += `, full in about ${eta} s at the current rate`;
  const fix = local
    ? 'widen net.ipv4.ip_local_port_range, reuse connections (keep-alive, pooling) or shorten TIME_WAIT'
    : addrs > 1
      ? `each internal source is pinned to one of the ${addrs} SNAT addresses, so this one can run out while the others are idle: widen the port range, reuse connections or shorten conntrack timeouts`
      : 'widen the masquerade port range or add SNAT addresses';
  return `${what} ${state}: ${numbers}; ${fix}`;
}
