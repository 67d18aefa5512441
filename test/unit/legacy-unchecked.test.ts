// Which unreadable-ruleset lines the pipeline says as a warning: only "iptables-legacy tables
// not checked" (their list needs CAP_DAC_READ_SEARCH, the tables may not exist at all), as
// buildRuleset words it; every other unreadable part stays an error. Pinned against the
// model's own output so a change of wording there cannot silently turn the warning back.
import { describe, expect, it } from 'vitest';
import { legacyUnchecked } from '../../src/namespace-pipeline.js';
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
