// Capacity detection against real rulesets in a lab router namespace, read over netlink by the
// addon (nf_tables dumps, iptables-nft compat payloads, iptables-legacy getsockopt), through
// RulesetWatcher + CapacityResolver. The lab builds the rules with nft/iptables; natwatch runs
// none of them.
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { createLab, run, type Lab } from '../../src/lab/topology.js';
import { nflogGroupsFromRuleset, readInterfaces, readRuleset, RulesetWatcher } from '../../src/source/ruleset.js';
import { CapacityResolver } from '../../src/track/capacity.js';
import { watchKernelChanges, type ChangeKind } from '../../src/source/kernel-watch.js';
import { until } from '../helpers/wait.js';
import { describeLive } from '../helpers/gate.js';

const NAT_IP = '198.51.100.1';

describeLive('ruleset capacity detection (live nft in a namespace)', () => {
  let lab: Lab;
  let ns: string;

  beforeAll(async () => {
    lab = await createLab({ prefix: 'nwb', ipv6: true });
    ns = lab.nsPath(lab.router);
  });
  afterAll(async () => {
    await lab?.destroy();
  });
  beforeEach(async () => {
    const r = await lab.exec(lab.router, 'nft', ['flush', 'ruleset']);
    expect(r.code).toBe(0);
    // Legacy tables survive `nft flush ruleset`: empty them (they exist only once a test made them).
    for (const tool of ['iptables-legacy', 'ip6tables-legacy']) await lab.exec(lab.router, tool, ['-t', 'nat', '-F']);
  });

  /** One chain with one rule (nft 1.0.6 wants the rule on its own line). */
  const chain = (table: string, hook: string, rule: string) =>
    lab.nft(lab.router, `table ${table} {\n chain c {\n  ${hook};\n  ${rule}\n }\n}\n`);

  async function capacityFor(natIp: string, proto = 'tcp') {
    const w = new RulesetWatcher(ns);
    const { info } = await w.refresh();
    const cap = new CapacityResolver();
    cap.setRuleset(info);
    cap.setInterfaces(await readInterfaces(ns));
    return { cap: cap.nat(proto, natIp, '198.51.100.8', 80), info, w };
  }

  it('reads the router namespace interface addresses', async () => {
    const ifs = await readInterfaces(ns);
    expect(ifs.get('r-out')).toContain(NAT_IP);
    expect(ifs.get('r-in')).toContain('192.0.2.1');
  });

  it('masquerade to :50000-50009 → 10 per destination', async () => {
    await chain('ip nat', 'type nat hook postrouting priority 100', 'oifname "r-out" meta l4proto { tcp, udp } masquerade to :50000-50009');
    const { cap, info } = await capacityFor(NAT_IP);
    expect(info.nat).toHaveLength(1);
    expect(cap).toEqual({ capacity: 10, addrs: 1, source: 'ruleset', reason: null });
    // Only for the protocols the rule names (an anonymous set, read element by element).
    expect((await capacityFor(NAT_IP, 'sctp')).cap.source).toBe('default');
  });

  it('masquerade without a range → the kernel default 1024-65535', async () => {
    await chain('ip nat', 'type nat hook postrouting priority 100', 'oifname "r-out" masquerade');
    expect((await capacityFor(NAT_IP)).cap).toMatchObject({ capacity: 64512, addrs: 1, source: 'ruleset' });
  });

  it('masquerade on another interface does not apply to r-out\'s address', async () => {
    await chain('ip nat', 'type nat hook postrouting priority 100', 'oifname "r-in" meta l4proto tcp masquerade to :1000-1001');
    expect((await capacityFor(NAT_IP)).cap.source).toBe('default');
    expect((await capacityFor('192.0.2.1')).cap.capacity).toBe(2);
  });

  it('snat to several addresses → the port range per address, and the address count', async () => {
    await chain('ip nat', 'type nat hook postrouting priority 100', 'oifname "r-out" meta l4proto tcp snat to 203.0.113.1-203.0.113.3:40000-40099');
    expect((await capacityFor('203.0.113.2')).cap).toEqual({ capacity: 100, addrs: 3, source: 'ruleset', reason: null });
    expect((await capacityFor('203.0.113.4')).cap.source).toBe('default');
  });

  it('iptables-nft MASQUERADE --to-ports: a compat target whose nf_nat range payload is decoded', async () => {
    const r = await lab.exec(lab.router, 'iptables-nft', ['-t', 'nat', '-A', 'POSTROUTING', '-o', 'r-out', '-p', 'tcp', '-j', 'MASQUERADE', '--to-ports', '50000-50009']);
    expect(r.code, r.stderr).toBe(0);
    const { cap, info } = await capacityFor(NAT_IP);
    expect(info.nat).toMatchObject([{ kind: 'masquerade', origin: 'iptables', oifname: 'r-out', ports: [50000, 50009] }]);
    expect(cap).toMatchObject({ capacity: 10, source: 'ruleset' });
  });

  it('iptables-nft SNAT to several addresses (compat rev 2 payload)', async () => {
    const r = await lab.exec(lab.router, 'iptables-nft', ['-t', 'nat', '-A', 'POSTROUTING', '-o', 'r-out', '-p', 'tcp', '-j', 'SNAT', '--to-source', '203.0.113.10-203.0.113.11:2000-2019']);
    expect(r.code, r.stderr).toBe(0);
    expect((await capacityFor('203.0.113.11')).cap).toMatchObject({ capacity: 20, addrs: 2, source: 'ruleset' });
  });

  it('iptables-legacy MASQUERADE (x_tables blob via getsockopt), only where the legacy table exists', async () => {
    const r = await lab.exec(lab.router, 'iptables-legacy', ['-t', 'nat', '-A', 'POSTROUTING', '-o', 'r-ou+', '-p', 'tcp', '-j', 'MASQUERADE', '--to-ports', '60000-60004']);
    expect(r.code, r.stderr).toBe(0);
    const { cap, info } = await capacityFor(NAT_IP);
    expect(info.nat).toMatchObject([{ kind: 'masquerade', origin: 'iptables-legacy', oifname: 'r-ou*', ports: [60000, 60004] }]);
    expect(cap).toMatchObject({ capacity: 5, source: 'ruleset' });
  });

  it('IPv6: snat in an ip6 table and ip6tables-legacy SNAT', async () => {
    await chain('ip6 nat6', 'type nat hook postrouting priority 100', 'oifname "r-out" meta l4proto tcp snat to [2001:db8:2::1]:3000-3009');
    expect((await capacityFor('2001:db8:2::1')).cap).toMatchObject({ capacity: 10, source: 'ruleset' });
    const r = await lab.exec(lab.router, 'ip6tables-legacy', ['-t', 'nat', '-A', 'POSTROUTING', '-o', 'r-out', '-p', 'tcp', '-j', 'SNAT', '--to-source', '[2001:db8:2::7]:4000-4001']);
    expect(r.code, r.stderr).toBe(0);
    expect((await capacityFor('2001:db8:2::7')).cap).toMatchObject({ capacity: 2, source: 'ruleset' });
  });

  it('per-interface masquerade rules: each NAT address gets its own interface\'s rule', async () => {
    await lab.nft(lab.router, 'table ip nat {\n chain c {\n  type nat hook postrouting priority 100;\n  oifname "r-in" meta l4proto tcp masquerade to :1000-1002\n  oifname "r-out" meta l4proto tcp masquerade to :2000-2006\n }\n}\n');
    expect((await capacityFor('192.0.2.1')).cap.capacity).toBe(3);
    expect((await capacityFor(NAT_IP)).cap.capacity).toBe(7);
  });

  it('re-reads cheaply: unchanged → no re-parse; a changed range is picked up', async () => {
    await chain('ip nat', 'type nat hook postrouting priority 100', 'oifname "r-out" meta l4proto tcp masquerade to :50000-50009');
    const { w } = await capacityFor(NAT_IP);
    expect((await w.refresh()).changed).toBe(false);
    await lab.exec(lab.router, 'nft', ['flush', 'ruleset']);
    await chain('ip nat', 'type nat hook postrouting priority 100', 'oifname "r-out" meta l4proto tcp masquerade to :50000-50019');
    const again = await w.refresh();
    expect(again.changed).toBe(true);
    expect(again.info.nat[0]!.ports).toEqual([50000, 50019]);
  });

  it('nflogGroupsFromRuleset names the groups of nft log statements and iptables NFLOG targets', async () => {
    await chain('inet f', 'type filter hook forward priority 0', 'tcp dport 9999 log prefix "blocked-9999 " group 5 drop');
    const r = await lab.exec(lab.router, 'iptables', ['-A', 'INPUT', '-p', 'udp', '--dport', '99', '-j', 'NFLOG', '--nflog-group', '7']);
    expect(r.code, r.stderr).toBe(0);
    expect(await nflogGroupsFromRuleset(ns)).toEqual([5, 7]);
    await lab.exec(lab.router, 'nft', ['flush', 'ruleset']);
    expect(await nflogGroupsFromRuleset(ns)).toEqual([]);
  });

  it('change notifications: an nft change and an address change each arrive once, debounced', async () => {
    const seen: ChangeKind[] = [];
    const w = watchKernelChanges(ns, { ruleset: true, addresses: true }, (k) => seen.push(k), 100);
    try {
      await chain('ip t1', 'type filter hook input priority 0', 'tcp dport 1 accept');
      await lab.exec(lab.router, 'nft', ['add', 'rule', 'ip', 't1', 'c', 'tcp', 'dport', '2', 'accept']);
      await until('a ruleset notification', () => seen.includes('ruleset'), 3000);
      expect(seen.filter((k) => k === 'ruleset')).toHaveLength(1);
      const r = await lab.exec(lab.router, 'ip', ['addr', 'add', '203.0.113.77/32', 'dev', 'r-out']);
      expect(r.code, r.stderr).toBe(0);
      await until('an address notification', () => seen.includes('addresses'), 3000);
      expect((await readInterfaces(ns)).get('r-out')).toContain('203.0.113.77');
      await lab.exec(lab.router, 'ip', ['addr', 'del', '203.0.113.77/32', 'dev', 'r-out']);
    } finally {
      w.close();
    }
  });

  it('never instantiates a legacy table: a namespace without one has none after reads', async () => {
    const name = `nwx-${randomBytes(3).toString('hex')}`;
    expect((await run('ip', ['netns', 'add', name])).code).toBe(0);
    try {
      const { ruleset } = await readRuleset(`/var/run/netns/${name}`);
      expect(ruleset).toMatchObject({ nat: [], ruleCount: 0, unreadable: [] });
      for (const file of ['ip_tables_names', 'ip6_tables_names']) {
        const r = await run('ip', ['netns', 'exec', name, 'cat', `/proc/net/${file}`]);
        expect(r.stdout, file).toBe('');
      }
    } finally {
      await run('ip', ['netns', 'del', name]);
    }
  });
});

