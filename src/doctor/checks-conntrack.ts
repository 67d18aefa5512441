// Checks on the conntrack table itself: is it in use, how full, how hashed, are events on,
// and the TCP timeouts that keep entries around.
import type { Facts } from './facts.js';
import type { CheckResult } from './types.js';

/** nf_conntrack_proto_tcp.c: tcp_timeouts[TCP_CONNTRACK_ESTABLISHED] = 5 DAYS, in seconds. */
const DEFAULT_ESTABLISHED = 432000;

const num = (f: Facts, k: keyof Facts['sysctl']): number | null => {
  const v = f.sysctl[k];
  if (v === undefined) return null;
  const n = Number(v.split(' ')[0]);
  return Number.isFinite(n) ? n : null;
};

export function conntrackActive(f: Facts): CheckResult {
  const id = 'conntrack-active';
  const count = num(f, 'net/netfilter/nf_conntrack_count');
  if (count === null) return { id, verdict: 'ok', finding: 'conntrack is not active in this namespace (no nf_conntrack_count)', fix: null };
  if (!f.ruleset) return { id, verdict: 'info', finding: `${count} entries tracked; ruleset unreadable (${f.rulesetError}), cannot tell what uses conntrack`, fix: null };
  const nat = f.ruleset.natRules.length;
  const ct = f.ruleset.ctRules.length;
  if (nat > 0) return { id, verdict: 'ok', finding: `conntrack in use by ${nat} NAT rule(s)${ct ? ` and ${ct} conntrack-matching rule(s)` : ''}; ${count} entries`, fix: null };
  if (ct > 0) {
    return {
      id,
      verdict: 'info',
      finding: `no NAT rules, but ${ct} rule(s) match on conntrack (e.g. ${f.ruleset.ctRules[0]}), so every flow is tracked: ${count} entries`,
      fix: null,
    };
  }
  if (count === 0) return { id, verdict: 'ok', finding: 'no NAT or conntrack rules and an empty table (the modules may stay loaded, but nothing here is tracked)', fix: null };
  const natted = f.table ? ` (${f.table.snat} still source-NATed)` : '';
  const chains = f.ruleset.natChains > 0 ? `; ${f.ruleset.natChains} empty nat chain(s) remain` : '';
  return {
    id,
    verdict: 'warn',
    finding:
      `conntrack still holds ${count} entries${natted} but no rule uses NAT or conntrack any more${chains}: ` +
      'flushing rules does not unload the modules nor drop entries; established TCP flows keep their state ' +
      `(and NAT binding) for nf_conntrack_tcp_timeout_established = ${num(f, 'net/netfilter/nf_conntrack_tcp_timeout_established') ?? DEFAULT_ESTABLISHED} s`,
    fix: `${f.inNs}conntrack -F   # drop the stale entries; to stop tracking for good keep no nat/ct rules (or add 'notrack' at priority raw)`,
  };
}

export function conntrackCount(f: Facts): CheckResult {
  const id = 'conntrack-count';
  const count = num(f, 'net/netfilter/nf_conntrack_count');
  const max = num(f, 'net/netfilter/nf_conntrack_max');
  if (count === null || max === null || max <= 0) return { id, verdict: 'info', finding: 'conntrack count/max not available', fix: null };
  const u = count / max;
  const finding = `${count} of ${max} entries (${(u * 100).toFixed(1)}%); at the limit new connections are dropped ("nf_conntrack: table full")`;
  const fix = `sysctl -w net.netfilter.nf_conntrack_max=${Math.max(max * 2, 65536)}   # host namespace: the limit is global`;
  if (u >= 0.9) return { id, verdict: 'fail', finding, fix };
  if (u >= 0.75) return { id, verdict: 'warn', finding, fix };
  return { id, verdict: 'ok', finding: `${count} of ${max} entries (${(u * 100).toFixed(1)}%)`, fix: null };
}

const nextPow2 = (n: number): number => 2 ** Math.ceil(Math.log2(Math.max(1, n)));

export function conntrackBuckets(f: Facts): CheckResult {
  const id = 'conntrack-buckets';
  const buckets = num(f, 'net/netfilter/nf_conntrack_buckets') ?? f.hashsize;
  const max = num(f, 'net/netfilter/nf_conntrack_max');
  if (buckets === null || max === null) return { id, verdict: 'info', finding: 'bucket count not available', fix: null };
  const want = nextPow2(Math.ceil(max / 4));
  const fix = `echo ${want} > /sys/module/nf_conntrack/parameters/hashsize   # host-wide; only settable here or at module load`;
  const pow2 = (buckets & (buckets - 1)) === 0;
  if (buckets < max / 4) {
    return { id, verdict: 'warn', finding: `${buckets} hash buckets for nf_conntrack_max ${max}: a full table averages ${(max / buckets).toFixed(1)} entries per chain (advice: max/4 = ${want}, a power of two)`, fix };
  }
  if (!pow2) return { id, verdict: 'warn', finding: `${buckets} hash buckets is not a power of two (advice: ${want})`, fix };
  return { id, verdict: 'ok', finding: `${buckets} buckets for max ${max} (≥ max/4, power of two)`, fix: null };
}

export function conntrackEvents(f: Facts): CheckResult {
  const id = 'conntrack-events';
  const v = num(f, 'net/netfilter/nf_conntrack_events');
  if (v === null) return { id, verdict: 'info', finding: 'net.netfilter.nf_conntrack_events not available (conntrack inactive here)', fix: null };
  if (v === 0) {
    return {
      id,
      verdict: 'fail',
      finding: 'net.netfilter.nf_conntrack_events = 0: the kernel sends no conntrack events, natwatch sees only table dumps',
      fix: `${f.inNs}sysctl -w net.netfilter.nf_conntrack_events=1`,
    };
  }
  const how = v === 2 ? 'events are generated once a listener subscribes (natwatch does)' : 'events are generated for every entry';
  return { id, verdict: 'ok', finding: `net.netfilter.nf_conntrack_events = ${v}: ${how}`, fix: null };
}

export function tcpTimeouts(f: Facts): CheckResult {
  const id = 'tcp-timeouts';
  const est = num(f, 'net/netfilter/nf_conntrack_tcp_timeout_established');
  const tw = num(f, 'net/netfilter/nf_conntrack_tcp_timeout_time_wait');
  const count = num(f, 'net/netfilter/nf_conntrack_count');
  const max = num(f, 'net/netfilter/nf_conntrack_max');
  if (est === null || tw === null) return { id, verdict: 'info', finding: 'TCP timeouts not available (conntrack inactive here)', fix: null };
  const timeWait = f.table?.byState.TIME_WAIT ?? null;
  const share = timeWait !== null && f.table && f.table.entries > 0 ? timeWait / f.table.entries : 0;
  const fill = count !== null && max ? count / max : 0;
  const finding =
    `established timeout ${est} s${est >= DEFAULT_ESTABLISHED ? ' (5 days: a peer that vanished without FIN/RST holds its entry that long)' : ''}, ` +
    `time_wait ${tw} s${timeWait !== null ? `; ${timeWait} entries in TIME_WAIT (${(share * 100).toFixed(0)}%)` : ''}`;
  const fix = `${f.inNs}sysctl -w net.netfilter.nf_conntrack_tcp_timeout_established=86400 net.netfilter.nf_conntrack_tcp_timeout_time_wait=30`;
  if (fill >= 0.5 && (est > 86400 || share > 0.25)) return { id, verdict: 'warn', finding: `table ${(fill * 100).toFixed(0)}% full; ${finding}`, fix };
  return { id, verdict: 'info', finding, fix: est > 86400 || tw > 60 ? fix : null };
}
