// nflog_drop: packets logged through NFLOG by the operator's drop rules, per
// {prefix, group, proto, dstIp, dstPort}. Fires on the first packets (drops = packets seen since
// firing), re-sent as the count grows (engine rate limit), resolved after nflogQuietMs without
// packets. A scan hitting one rule must not raise one alert per port: at most
// nflogMaxPerRule per-destination alerts fire at once per (group, prefix); destinations past
// that go into one aggregate alert for the rule (key with dstIp/dstPort null, `destinations`
// and the top 10 by packets), resolved after its own quiet period. Destinations tracked are
// bounded (nflogMaxKeys); packets beyond are still counted in the aggregate.
import { endpoint } from '../endpoint.js';
import type { NflogKey, NflogRuleKey } from '../types.js';
import type { NflogView } from '../source/types.js';
import { protoName } from '../source/names.js';
import type { Clock } from './clock.js';
import type { AlertSink } from './engine.js';
import type { Thresholds } from './thresholds.js';

interface Entry {
  key: NflogKey;
  rule: string;
  pending: number;
  lastMs: number;
}

interface Destination {
  proto: string;
  dstIp: string;
  dstPort: number;
  packets: number;
}

/** The aggregate of one rule's destinations past the per-destination cap. */
interface Aggregate {
  key: NflogRuleKey;
  dests: Map<string, Destination>;
  pending: number;
  lastMs: number;
}

interface Rule {
  /** Per-destination keys firing for this (group, prefix). */
  perDest: number;
  agg: Aggregate | null;
}

/** Destinations listed in an aggregate alert's message and detail. */
const TOP = 10;

export class NflogDropRule {
  private readonly keys = new Map<string, Entry>();
  private readonly rules = new Map<string, Rule>();
  /** Destinations held in aggregates (counts against nflogMaxKeys with `keys`). */
  private aggDests = 0;
  /** Packets whose destination was not tracked because nflogMaxKeys were already held. */
  overflow = 0;

  constructor(
    private readonly engine: AlertSink,
    private readonly clock: Clock,
    private readonly t: Thresholds,
  ) {}

  onBatch(view: NflogView): void {
    const now = this.clock.now();
    const fresh: Array<Entry | Aggregate> = [];
    for (let i = 0; i < view.count; i++) {
      view.seek(i);
      const prefix = view.prefix();
      const dst = view.dst();
      const ruleId = `${prefix}|${view.group}`;
      const destId = `${view.proto}|${dst}|${view.dport}`;
      const id = `${ruleId}|${destId}`;
      let e = this.keys.get(id);
      if (e) {
        e.pending++;
        e.lastMs = now;
        continue;
      }
      let rule = this.rules.get(ruleId);
      if (!rule) this.rules.set(ruleId, (rule = { perDest: 0, agg: null }));
      const agg = rule.agg;
      const inAgg = agg?.dests.get(destId);
      if (inAgg || rule.perDest >= this.t.nflogMaxPerRule) {
        // Already aggregated, or the rule has its share of per-destination alerts.
        const a = agg ?? (rule.agg = { key: { prefix, group: view.group, proto: null, dstIp: null, dstPort: null }, dests: new Map(), pending: 0, lastMs: now });
        if (a.pending === 0 && !this.engine.isFiring('nflog_drop', ruleKeyId(a.key))) fresh.push(a);
        a.pending++;
        a.lastMs = now;
        if (inAgg) inAgg.packets++;
        else if (this.held() < this.t.nflogMaxKeys) {
          a.dests.set(destId, { proto: protoName(view.proto), dstIp: dst, dstPort: view.dport, packets: 1 });
          this.aggDests++;
        } else this.overflow++;
        continue;
      }
      if (this.held() >= this.t.nflogMaxKeys) {
        this.overflow++;
        continue;
      }
      e = { key: { prefix, group: view.group, proto: protoName(view.proto), dstIp: dst, dstPort: view.dport }, rule: ruleId, pending: 1, lastMs: now };
      this.keys.set(id, e);
      rule.perDest++;
      fresh.push(e);
    }
    // First packets fire at once; growth of known keys goes out on the tick.
    for (const x of new Set(fresh)) 'dests' in x ? this.flushAgg(x) : this.flush(x);
  }

  tick(): void {
    const now = this.clock.now();
    for (const [id, e] of this.keys) {
      if (e.pending > 0) this.flush(e);
      else if (now - e.lastMs >= this.t.nflogQuietMs) {
        this.keys.delete(id);
        this.engine.resolve('nflog_drop', keyId(e.key));
        const rule = this.rules.get(e.rule)!;
        rule.perDest--;
        this.forgetRule(e.rule, rule);
      }
    }
    for (const [ruleId, rule] of this.rules) {
      const a = rule.agg;
      if (!a) continue;
      if (a.pending > 0) this.flushAgg(a);
      else if (now - a.lastMs >= this.t.nflogQuietMs) {
        rule.agg = null;
        this.aggDests -= a.dests.size;
        this.engine.resolve('nflog_drop', ruleKeyId(a.key));
        this.forgetRule(ruleId, rule);
      }
    }
  }

  private held(): number {
    return this.keys.size + this.aggDests;
  }

  private forgetRule(id: string, rule: Rule): void {
    if (rule.perDest === 0 && rule.agg === null) this.rules.delete(id);
  }

  private flush(e: Entry): void {
    const n = e.pending;
    e.pending = 0;
    this.engine.observe('nflog_drop', keyId(e.key), e.key, 'warning', {
      used: null,
      capacity: null,
      dropsDelta: n,
      message: (total) => nflogMessage(e.key, total),
    });
  }

  private flushAgg(a: Aggregate): void {
    const n = a.pending;
    a.pending = 0;
    const max = this.t.nflogMaxPerRule;
    this.engine.observe('nflog_drop', ruleKeyId(a.key), a.key, 'warning', {
      used: null,
      capacity: null,
      dropsDelta: n,
      destinations: a.dests.size,
      detail: { top: top(a) },
      message: (total) => aggMessage(a, total, max),
    });
  }
}

const keyId = (k: NflogKey) => `${k.prefix}|${k.group}|${k.proto}|${k.dstIp}|${k.dstPort}`;
/** Cannot collide with a per-destination id: those have five fields. */
const ruleKeyId = (k: NflogRuleKey) => `${k.prefix}|${k.group}|*`;

function ruleText(prefix: string, group: number): string {
  const p = prefix.trim();
  return p ? `the rule logging "${p}" (NFLOG group ${group})` : `a rule logging to NFLOG group ${group}`;
}

function nflogMessage(k: NflogKey, packets: number): string {
  return `Packets to ${k.proto} ${endpoint(k.dstIp, k.dstPort)} are dropped by ${ruleText(k.prefix, k.group)}: ${packets} packet${packets === 1 ? '' : 's'} so far; if this traffic is wanted, change that rule`;
}

function top(a: Aggregate): Destination[] {
  return [...a.dests.values()].sort((x, y) => y.packets - x.packets).slice(0, TOP).map((d) => ({ ...d }));
}

function aggMessage(a: Aggregate, packets: number, perRule: number): string {
  const n = a.dests.size;
  const list = top(a).map((d) => `${d.proto} ${endpoint(d.dstIp, d.dstPort)} (${d.packets})`).join(', ');
  return (
    `Packets to ${n} more destination${n === 1 ? '' : 's'} (beyond the ${perRule} alerted one by one) were dropped by ${ruleText(a.key.prefix, a.key.group)}: ` +
    `${packets} packet${packets === 1 ? '' : 's'} so far; top ${Math.min(n, TOP)}: ${list || 'none tracked'}; many destinations at once looks like a scan or a misrouted client`
  );
}
