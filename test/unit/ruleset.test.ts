import { describe, expect, it } from 'vitest';
import { decodeFacts } from '../../src/source/facts-codec.js';
import { buildRuleset, interfacesOf } from '../../src/source/ruleset.js';
import { CapacityResolver } from '../../src/track/capacity.js';
import { readFixture } from '../fixtures/fixtures.js';

// The addon's kernel-facts output for the namespace described at the top of the fixture:
// native nft (sets, maps, prefixes, ranges, IPv6), iptables-nft (compat targets with
// x_tables payloads) and iptables-legacy rules (getsockopt blobs), plus rtnetlink addresses.
const facts = decodeFacts(readFixture('facts-ruleset').bytes);
const rs = buildRuleset(facts);
const by = (oif: string | null) => rs.nat.filter((n) => n.oifname === oif);

describe('buildRuleset over a captured namespace', () => {
  it('native nft: masquerade and snat with ranges, protocol sets, prefixes, maps, IPv6', () => {
    expect(by('r-out')).toEqual([{ kind: 'masquerade', family: 'ip', protos: ['tcp', 'udp'], oifname: 'r-out', addrs: null, ports: [50000, 50009], origin: 'nft', where: 'ip mynat post' }]);
    expect(by('x')).toMatchObject([{ kind: 'masquerade', ports: null, protos: null }]);
    expect(by('y')).toMatchObject([{ kind: 'snat', addrs: [{ lo: '203.0.113.1', hi: '203.0.113.3' }], ports: [40000, 40099], protos: ['tcp'] }]);
    expect(by('z')).toMatchObject([{ kind: 'snat', addrs: [{ lo: '203.0.113.7', hi: '203.0.113.7' }], ports: null }]);
    expect(by('w')).toMatchObject([{ kind: 'snat', addrs: [{ lo: '203.0.113.5', hi: '203.0.113.5' }] }]);
    expect(by('v')).toMatchObject([{ kind: 'snat', addrs: [{ lo: '203.0.113.9', hi: '203.0.113.9' }], ports: [41000, 41000] }]);
    expect(by('p')).toMatchObject([{ kind: 'snat', addrs: [{ lo: '203.0.113.0', hi: '203.0.113.3' }] }]);
    expect(by('eth*')).toMatchObject([{ kind: 'masquerade' }]);
    expect(rs.nat.find((n) => n.family === 'ip6' && n.origin === 'nft')).toMatchObject({ kind: 'snat', addrs: [{ lo: '2001:db8::1' }], ports: [2000, 2100] });
  });

  it('iptables-nft compat targets carry their nf_nat_range payloads', () => {
    expect(by('eth9')).toEqual([{ kind: 'masquerade', family: 'ip', protos: ['tcp'], oifname: 'eth9', addrs: null, ports: [50000, 50009], origin: 'iptables', where: 'ip nat POSTROUTING' }]);
    expect(by('eth8')).toMatchObject([{ kind: 'snat', addrs: [{ lo: '203.0.113.20', hi: '203.0.113.21' }], ports: [1000, 1999], origin: 'iptables' }]);
    expect(by('eth7')).toMatchObject([{ kind: 'masquerade', family: 'ip6', ports: [3000, 3009], origin: 'iptables' }]);
  });

  it('iptables-legacy tables: prefix interfaces, IPv4 and IPv6', () => {
    expect(by('leg*')).toMatchObject([{ kind: 'masquerade', family: 'ip', protos: ['udp'], ports: [60000, 60004], origin: 'iptables-legacy' }]);
    expect(by('leg6')).toMatchObject([{ kind: 'snat', family: 'ip6', addrs: [{ lo: '2001:db8::9', hi: '2001:db8::9' }], ports: [5000, 5004], origin: 'iptables-legacy' }]);
  });

  it('log groups, and whether the logging rule denies', () => {
    expect(rs.groups).toEqual([5, 6, 7, 9]);
    const denies = Object.fromEntries(rs.logs.map((l) => [l.group, l.denies]));
    expect(denies).toEqual({ 5: true, 6: true, 7: false, 9: false });
    expect(rs.logs.find((l) => l.group === 5)?.prefix).toBe('blocked-9999 ');
  });

  it('rules that keep conntrack in use, NAT rule text for doctor, interfaces', () => {
    expect(rs.ctRules).toEqual(['ip mynat filt: ct state', 'legacy ip filter INPUT: -m conntrack']);
    expect(rs.natRules.map((r) => r.text)).toContain('ip6 nat6 p: tcp snat to [2001:db8::1]:2000-2100');
    expect(rs.natRules.find((r) => r.text.includes('"y"'))?.addresses).toBe(3);
    expect(rs.unreadable).toEqual([]);
    expect(interfacesOf(facts).get('r-out')).toEqual(['198.51.100.1', '2001:db8:2::1']);
  });

  it('feeds capacity: the range of the rule that produced the NAT address', () => {
    const c = new CapacityResolver();
    c.setDetected(rs.nat);
    c.setInterfaces(interfacesOf(facts));
    expect(c.nat('tcp', '198.51.100.1', '198.51.100.8', 80)).toMatchObject({ capacity: 10, addrs: 1, source: 'ruleset' });
    expect(c.nat('tcp', '203.0.113.2', '198.51.100.8', 80)).toMatchObject({ capacity: 100, addrs: 3, source: 'ruleset' });
  });
});

describe('decodeFacts', () => {
  it('rejects an item that overruns the buffer, skips unknown items', () => {
    expect(() => decodeFacts(Uint8Array.from([1, 0, 9, 0, 2, 0]))).toThrow(/overruns/);
    expect(decodeFacts(Uint8Array.from([99, 0, 4, 0, 1, 2, 3, 4])).rules).toEqual([]);
  });

  it('names a missing capability instead of reading as empty', () => {
    const eperm = buildRuleset({ chains: [], rules: [], setElems: [], links: new Map(), errors: [{ section: 'nft', errno: 1, what: 'gettable' }, { section: 'iptables-legacy', errno: 13, what: 'tables-names' }] });
    expect(eperm.unreadable).toEqual([
      'nf_tables ruleset unreadable: need CAP_NET_ADMIN',
      'iptables-legacy tables not checked: /proc/net/ip_tables_names is readable by root only (need CAP_DAC_READ_SEARCH)',
    ]);
  });
});
