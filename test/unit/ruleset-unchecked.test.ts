// Which unreadable-ruleset parts the pipeline says as a warning (Ruleset.unchecked): only the
// iptables-legacy table lists (they need CAP_DAC_READ_SEARCH, the tables may not exist at all);
// every other unreadable part stays an error. And when the socket dump is skipped.
import { describe, expect, it } from 'vitest';
import { conntrackSeesLocal } from '../../src/namespace-pipeline.js';
import { buildRuleset } from '../../src/source/ruleset.js';
import { CapacityResolver } from '../../src/track/capacity.js';

const read = (errors: Array<{ section: string; errno: number; what: string }>) =>
  buildRuleset({ chains: [], rules: [], setElems: [], links: new Map(), errors: errors as never });

describe('Ruleset.unchecked', () => {
  it('the table list unreadable (EACCES/EPERM on ip_tables_names, ip6_tables_names): a warning', () => {
    const r = read([
      { section: 'iptables-legacy', errno: 13, what: 'tables-names' },
      { section: 'ip6tables-legacy', errno: 1, what: 'tables-names' },
    ]);
    expect(r.unreadable).toHaveLength(2);
    expect(r.unchecked).toEqual(r.unreadable);
    expect(r.unreadable.join('\n')).toMatch(/CAP_DAC_READ_SEARCH/);
  });

  it('tables listed but unreadable, nf_tables unreadable, other errnos: errors', () => {
    const r = read([
      { section: 'iptables-legacy', errno: 1, what: 'getsockopt' },
      { section: 'ip6tables-legacy', errno: 12, what: 'tables-names' },
      { section: 'nft', errno: 1, what: 'gettable' },
    ]);
    expect(r.unreadable).toHaveLength(3);
    expect(r.unchecked).toBeUndefined();
  });
});

describe('an unreadable part explains only the keys of its family', () => {
  it('iptables-legacy for IPv4 keys, ip6tables-legacy for IPv6 keys, nf_tables for both', () => {
    const c = new CapacityResolver();
    const legacy = [
      { section: 'iptables-legacy', errno: 13, what: 'tables-names' },
      { section: 'ip6tables-legacy', errno: 13, what: 'tables-names' },
    ];
    c.setRuleset(read(legacy));
    const v4 = c.nat('tcp', '203.0.113.1', '198.51.100.8', 80);
    const v6 = c.nat('tcp', '2001:db8::1', '2001:db8:1::8', 80);
    expect(v4.source).toBe('unknown');
    expect(v4.reason).toMatch(/^iptables-legacy/);
    expect(v4.reason).not.toMatch(/ip6tables/);
    expect(v6.source).toBe('unknown');
    expect(v6.reason).toMatch(/^ip6tables-legacy/);
    expect(v6.reason).not.toMatch(/(^|; )iptables-legacy/);

    c.setRuleset(read([...legacy, { section: 'nft', errno: 1, what: 'gettable' }]));
    expect(c.nat('tcp', '203.0.113.1', '198.51.100.8', 80).reason).toMatch(/nf_tables/);
    expect(c.nat('tcp', '2001:db8::1', '2001:db8:1::8', 80).reason).toMatch(/nf_tables/);

    // Only the IPv6 tables unreadable: an IPv4 key depends on nothing unread.
    c.setRuleset(read([legacy[1]!]));
    expect(c.nat('tcp', '203.0.113.1', '198.51.100.8', 80).source).toBe('default');
    expect(c.nat('tcp', '2001:db8::1', '2001:db8:1::8', 80).source).toBe('unknown');
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
