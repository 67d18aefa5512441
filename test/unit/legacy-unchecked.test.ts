// Which unreadable-ruleset lines the pipeline says as a warning: only "iptables-legacy tables
// not checked" (their list needs CAP_DAC_READ_SEARCH, the tables may not exist at all), as
// buildRuleset words it; every other unreadable part stays an error. Pinned against the
// model's own output so a change of wording there cannot silently turn the warning back.
import { describe, expect, it } from 'vitest';
import { conntrackSeesLocal, legacyUnchecked } from '../../src/namespace-pipeline.js';
import { buildRuleset } from '../../src/source/ruleset.js';

const lines = (errors: Array<{ section: string; errno: number; what: string }>) =>
  buildRuleset({ chains: [], rules: [], setElems: [], links: new Map(), errors: errors as never }).unreadable;

describe('legacyUnchecked', () => {
  it('the table list unreadable (EACCES/EPERM on ip_tables_names, ip6_tables_names): a warning', () => {
    const l = lines([
      { section: 'iptables-legacy', errno: 13, what: 'tables-names' },
      { section: 'ip6tables-legacy', errno: 1, what: 'tables-names' },
    ]);
    expect(l).toHaveLength(2);
    expect(l.map(legacyUnchecked)).toEqual([true, true]);
    expect(l.join('\n')).toMatch(/CAP_DAC_READ_SEARCH/);
  });

  it('tables listed but unreadable, nf_tables unreadable, other errnos: errors', () => {
    const l = lines([
      { section: 'iptables-legacy', errno: 1, what: 'getsockopt' },
      { section: 'ip6tables-legacy', errno: 12, what: 'tables-names' },
      { section: 'nft', errno: 1, what: 'gettable' },
    ]);
    expect(l).toHaveLength(3);
    expect(l.map(legacyUnchecked)).toEqual([false, false, false]);
  });
});

describe('conntrackSeesLocal (whether the per-second sock_diag dump is needed)', () => {
  const LEGACY_UNLISTED = [{ section: 'iptables-legacy', errno: 13, what: 'tables-names' }];
  const ruleset = (chains: unknown[], errors: unknown[]) =>
    buildRuleset({ chains: chains as never, rules: [], setElems: [], links: new Map(), errors: errors as never });
  const NAT_CHAIN = { family: 'ip', table: 'nat', name: 'post', type: 'nat', hook: 'postrouting', priority: 100 };

  it('an nftables nat chain proves it, even with the legacy tables unlisted (unprivileged serve)', () => {
    const r = ruleset([NAT_CHAIN], LEGACY_UNLISTED);
    expect(r.unreadable.length).toBeGreaterThan(0);
    expect(conntrackSeesLocal(r)).toBe(true);
  });

  it('nothing read proves it: no nat chain, no conntrack rule, readable or not', () => {
    expect(conntrackSeesLocal(ruleset([], []))).toBe(false);
    expect(conntrackSeesLocal(ruleset([], LEGACY_UNLISTED))).toBe(false);
    expect(conntrackSeesLocal(ruleset([{ ...NAT_CHAIN, type: 'filter' }], []))).toBe(false);
  });
});
