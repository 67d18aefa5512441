// What the doctor needs from `nft list ruleset` (text, because nft prints iptables-nft's xt
// targets there with their arguments — `masquerade to :50000-50009` — while its JSON names only
// the target): which rules keep conntrack in use, the NAT port ranges and the SNAT addresses.
import { isIP } from 'node:net';

export interface NatRule {
  table: string;
  chain: string;
  kind: 'masquerade' | 'snat' | 'dnat' | 'redirect' | 'xt';
  /** NAT port range when the rule names one. */
  ports: [number, number] | null;
  /** SNAT address count (masquerade: 1, the outgoing interface's address). */
  addresses: number;
  text: string;
}

export interface RulesetScan {
  natRules: NatRule[];
  /** Rules matching on conntrack state without NAT (`ct state`, `-m conntrack`, `-m state`). */
  ctRules: string[];
  /** Base chains of type nat (they alone do not keep conntrack tracking). */
  natChains: number;
  ruleCount: number;
}

const CT_MATCH = /\bct\s+(state|status|mark|direction|zone|helper|expiration|count|label|original|reply|id|event|timeout|expectation)\b|xt match "(conntrack|state|connmark|connlimit|helper)"|\bflow (add|offload)\b|\bct helper set\b/;

export function scanRuleset(text: string): RulesetScan {
  const out: RulesetScan = { natRules: [], ctRules: [], natChains: 0, ruleCount: 0 };
  let table = '';
  let chain = '';
  // Block kinds from the outside in; only lines directly inside a chain are rules.
  const stack: string[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line === '}') {
      stack.pop();
      continue;
    }
    if (line.endsWith('{')) {
      const m = /^(table|chain)\s+(.+?)\s*\{$/.exec(line);
      if (m?.[1] === 'table') table = m[2]!;
      if (m?.[1] === 'chain') chain = m[2]!;
      stack.push(m?.[1] ?? 'object');
      continue;
    }
    if (stack.at(-1) !== 'chain') continue;
    if (/^type \S+ hook\b/.test(line)) {
      if (/^type nat hook\b/.test(line)) out.natChains++;
      continue;
    }
    if (/^(policy|comment|devices) /.test(line)) continue;
    out.ruleCount++;
    const nat = natOf(line);
    if (nat) out.natRules.push({ table, chain, text: line, ...nat });
    else if (CT_MATCH.test(line)) out.ctRules.push(`${table} ${chain}: ${line}`);
  }
  return out;
}

function natOf(line: string): Omit<NatRule, 'table' | 'chain' | 'text'> | null {
  let m = /\bmasquerade(?:\s+to\s+:(\d+)(?:-(\d+))?)?/.exec(line);
  if (m) return { kind: 'masquerade', ports: range(m[1], m[2]), addresses: 1 };
  m = /\bsnat(?:\s+(?:ip6?|inet))?\s+to\s+(\S+)/.exec(line);
  if (m) return { kind: 'snat', ...targetOf(m[1]!) };
  m = /\bdnat(?:\s+(?:ip6?|inet))?\s+to\s+(\S+)/.exec(line);
  if (m) return { kind: 'dnat', ...targetOf(m[1]!) };
  m = /\bredirect(?:\s+to\s+:(\d+)(?:-(\d+))?)?/.exec(line);
  if (m) return { kind: 'redirect', ports: range(m[1], m[2]), addresses: 1 };
  m = /xt target "(MASQUERADE|SNAT|DNAT|REDIRECT|NETMAP)"/.exec(line);
  if (m) return { kind: 'xt', ports: null, addresses: 1 };
  return null;
}

function range(lo: string | undefined, hi: string | undefined): [number, number] | null {
  if (lo === undefined) return null;
  return [Number(lo), Number(hi ?? lo)];
}

/** `A`, `A-B`, `A:P`, `A-B:P-Q`, `[v6]:P`; a map or set expression counts as unknown (1). */
function targetOf(spec: string): { ports: [number, number] | null; addresses: number } {
  let addr = spec;
  let ports: [number, number] | null = null;
  const v6 = /^\[([^\]]+)\](?::(\d+)(?:-(\d+))?)?$/.exec(spec);
  if (v6) {
    addr = v6[1]!;
    ports = range(v6[2], v6[3]);
  } else {
    const p = /^(.*?):(\d+)(?:-(\d+))?$/.exec(spec);
    if (p && isIP(p[1]!.split('-')[0]!) === 4) {
      addr = p[1]!;
      ports = range(p[2], p[3]);
    }
  }
  const [a, b] = addr.split('-');
  return { ports, addresses: b !== undefined && isIP(a!) === 4 && isIP(b) === 4 ? Math.max(1, ipv4(b) - ipv4(a!) + 1) : 1 };
}

function ipv4(s: string): number {
  return s.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}

/**
 * Rules of the legacy (x_tables) iptables, which `nft list ruleset` does not show:
 * `iptables-legacy-save` output, `-A CHAIN ... -j MASQUERADE --to-ports 50000-50009`.
 */
export function scanIptablesSave(text: string, into: RulesetScan): RulesetScan {
  let table = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) {
      table = `legacy ${line.slice(1)}`;
      continue;
    }
    const m = /^-A (\S+) (.*)$/.exec(line);
    if (!m) continue;
    into.ruleCount++;
    const [, chain, rest] = m as unknown as [string, string, string];
    const target = /-j (MASQUERADE|SNAT|DNAT|REDIRECT|NETMAP)\b/.exec(rest)?.[1];
    if (target) {
      const ports = /--to-ports (\d+)(?:-(\d+))?/.exec(rest);
      const to = /--to-(?:source|destination) (\S+)/.exec(rest);
      const t = to ? targetOf(to[1]!) : { ports: null, addresses: 1 };
      const kind = target === 'MASQUERADE' ? 'masquerade' : target === 'SNAT' ? 'snat' : target === 'DNAT' ? 'dnat' : target === 'REDIRECT' ? 'redirect' : 'xt';
      into.natRules.push({ table, chain: chain!, kind, ports: ports ? range(ports[1], ports[2]) : t.ports, addresses: t.addresses, text: line });
    } else if (/-m (conntrack|state|connmark|connlimit|helper)\b|-j (CONNMARK|CT)\b/.test(rest)) {
      into.ctRules.push(`${table} ${chain}: ${line}`);
    }
  }
  return into;
}
