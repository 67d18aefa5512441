// How many simultaneous flows a key can hold: the NAT port range that applies to its NAT
// address (operator override, per-rule config, or what the namespace's ruleset says), or the
// local port range for the host's own connections. Resolved when a key is first seen and again
// when any input changes (`version`).
//
// This is the one capacity model: serve's tracker and doctor's snat-capacity check both ask it,
// so they agree by construction. Every answer says where it came from (`source`): an
// unreadable ruleset makes a key's capacity `unknown` (with the reason), never a silent default.
import { inRange, ipFamily, rangeSize } from '../source/ip.js';
import type { DetectedNat, Ruleset } from '../source/ruleset.js';
import type { CapacitySource } from '../types.js';

/** The kernel's NAT source port range when a rule names none (nf_nat_core.c: 1024-65535). */
export const DEFAULT_NAT_PORTS: [number, number] = [1024, 65535];

/** Per-rule override from the config file. Absent fields match anything. */
export interface NatRuleConfig {
  natIp?: string;
  dstIp?: string;
  dstPort?: number;
  proto?: string;
  ports: [number, number];
}

/** Where a capacity came from (types.ts). With `unknown` the number is the kernel default. */
export type { CapacitySource };

export interface Capacity {
  capacity: number;
  /** NAT addresses the rule spreads internal sources over (1 for masquerade/local). */
  addrs: number;
  source: CapacitySource;
  /** Why the source is `unknown` or `default`; null otherwise. */
  reason: string | null;
}

export const portSpan = (r: readonly [number, number]): number => Math.max(0, r[1] - r[0] + 1);

export interface CapacityOptions {
  natPorts?: [number, number];
  natRules?: NatRuleConfig[];
}

export class CapacityResolver {
  /** Bumped whenever a resolution may have changed. */
  version = 0;
  private detected: DetectedNat[] = [];
  /** Parts of the ruleset that could not be read (Ruleset.unreadable), as IPv4 and IPv6 keys see them. */
  private unreadable = { 4: [] as string[], 6: [] as string[] };
  private localRead = false;
  /** capacityInfo() answers for this version, by key. */
  private infoCache = new Map<string, Capacity>();
  private infoVer = -1;
  private ifAddrs = new Map<string, string[]>();
  /** Until the first snapshot: the kernel's default ip_local_port_range (af_inet.c, inet_init_net). */
  private localCap = portSpan([32768, 60999]);

  constructor(private opts: CapacityOptions = {}) {}

  /** Operator overrides changed (SIGHUP); undefined keeps one, null clears it. Keys re-resolve. */
  setOverrides(o: { natPorts?: [number, number] | null; natRules?: NatRuleConfig[] | null }): void {
    const next = { ...this.opts };
    if (o.natPorts !== undefined) next.natPorts = o.natPorts ?? undefined;
    if (o.natRules !== undefined) next.natRules = o.natRules ?? undefined;
    this.opts = next;
    this.version++;
  }

  setDetected(rules: DetectedNat[]): void {
    if (JSON.stringify(rules) === JSON.stringify(this.detected)) return;
    this.detected = rules;
    this.version++;
  }

  /** A whole ruleset read: its NAT statements and what of it could not be read. */
  setRuleset(r: Pick<Ruleset, 'nat' | 'unreadable' | 'ip4Only' | 'ip6Only'>): void {
    this.setDetected(r.nat);
    this.setUnreadable(r.unreadable, r);
  }

  /**
   * The ruleset (or part of it) could not be read: keys no readable rule explains are unknown.
   * Lines in ip4Only (ip6Only) concern IPv4 (IPv6) keys only; any other line, both.
   */
  setUnreadable(lines: string[], only: { ip4Only?: string[]; ip6Only?: string[] } = {}): void {
    const next = {
      4: lines.filter((l) => !only.ip6Only?.includes(l)),
      6: lines.filter((l) => !only.ip4Only?.includes(l)),
    };
    if (JSON.stringify(next) === JSON.stringify(this.unreadable)) return;
    this.unreadable = next;
    this.version++;
  }

  /** Interface name → its addresses; masquerade rules with `oifname` match through it. */
  setInterfaces(ifs: Map<string, string[]>): void {
    if (JSON.stringify([...ifs]) === JSON.stringify([...this.ifAddrs])) return;
    this.ifAddrs = ifs;
    this.version++;
  }

  /** ip_local_port_range minus ip_local_reserved_ports. */
  setLocalLimits(range: [number, number], reserved: Array<[number, number]>): void {
    let n = portSpan(range);
    for (const [a, b] of reserved) {
      const lo = Math.max(a, range[0]);
      const hi = Math.min(b, range[1]);
      if (hi >= lo) n -= hi - lo + 1;
    }
    n = Math.max(n, 0);
    if (n === this.localCap && this.localRead) return;
    this.localCap = n;
    this.localRead = true;
    this.version++;
  }

  local(): Capacity {
    return this.localRead
      ? { capacity: this.localCap, addrs: 1, source: 'sysctl', reason: null }
      : { capacity: this.localCap, addrs: 1, source: 'default', reason: "ip_local_port_range not read yet: the kernel's default 32768-60999" };
  }

  /** A tracker key's capacity with its source (key ids: Occupancy). */
  infoOf(local: boolean, key: { proto: string; natIp: string; dstIp: string; dstPort: number }): Capacity {
    return this.info(local, key.proto, key.natIp, key.dstIp, key.dstPort);
  }

  /** Source and reason of a key's capacity (cached per version: top and alerts ask each second). */
  info(local: boolean, proto: string, natIp: string, dstIp: string, dstPort: number): Capacity {
    if (this.infoVer !== this.version) {
      this.infoCache.clear();
      this.infoVer = this.version;
    }
    const k = `${local ? 'L' : 'N'}|${proto}|${natIp}|${dstIp}|${dstPort}`;
    let c = this.infoCache.get(k);
    if (!c) {
      c = local ? this.local() : this.nat(proto, natIp, dstIp, dstPort);
      if (this.infoCache.size > 10_000) this.infoCache.clear();
      this.infoCache.set(k, c);
    }
    return c;
  }

  nat(proto: string, natIp: string, dstIp: string, dstPort: number): Capacity {
    for (const r of this.opts.natRules ?? []) {
      if (r.natIp !== undefined && r.natIp !== natIp) continue;
      if (r.dstIp !== undefined && r.dstIp !== dstIp) continue;
      if (r.dstPort !== undefined && r.dstPort !== dstPort) continue;
      if (r.proto !== undefined && r.proto !== proto) continue;
      return { capacity: portSpan(r.ports), addrs: 1, source: 'config', reason: null };
    }
    if (this.opts.natPorts) return { capacity: portSpan(this.opts.natPorts), addrs: 1, source: 'flag', reason: null };
    const rule = this.match(proto, natIp);
    if (rule) {
      const addrs = rule.addrs ? rule.addrs.reduce((n, a) => n + rangeSize(a), 0) : 1;
      return {
        capacity: portSpan(rule.ports ?? DEFAULT_NAT_PORTS),
        addrs: Math.max(addrs, 1),
        source: 'ruleset',
        reason: rule.ports ? null : `the ${rule.kind} rule names no port range: the kernel's ${DEFAULT_NAT_PORTS.join('-')}`,
      };
    }
    const cap = portSpan(DEFAULT_NAT_PORTS);
    const unreadable = this.unreadable[ipFamily(natIp) === 6 ? 6 : 4];
    if (unreadable.length) return { capacity: cap, addrs: 1, source: 'unknown', reason: unreadable.join('; ') };
    return { capacity: cap, addrs: 1, source: 'default', reason: `no source NAT rule for ${natIp} names a range: the kernel's ${DEFAULT_NAT_PORTS.join('-')}` };
  }

  /** The rule that produced natIp: an snat naming it, else a masquerade out of its interface. */
  private match(proto: string, natIp: string): DetectedNat | undefined {
    const fam = ipFamily(natIp);
    const fits = (r: DetectedNat): boolean =>
      (r.family === 'inet' || (r.family === 'ip6') === (fam === 6)) && (r.protos === null || r.protos.includes(proto));
    const snat = this.detected.find((r) => r.kind === 'snat' && fits(r) && r.addrs?.some((a) => inRange(natIp, a)));
    if (snat) return snat;
    return this.detected.find((r) => {
      if (r.kind !== 'masquerade' || !fits(r)) return false;
      if (r.oifname === null || this.ifAddrs.size === 0) return true;
      const name = r.oifname;
      const wild = name.endsWith('*') ? name.slice(0, -1) : null;
      for (const [ifname, addrs] of this.ifAddrs) {
        if ((wild !== null ? ifname.startsWith(wild) : ifname === name) && addrs.includes(natIp)) return true;
      }
      return false;
    });
  }
}
