// Capacity detection against real rulesets in a lab router namespace: what `nft -j` and
// iptables-nft-save actually print on this machine, through RulesetWatcher + CapacityResolver.
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { createLab, type Lab } from '../../src/lab/topology.js';
import { nflogGroupsFromRuleset, readInterfaces, RulesetWatcher } from '../../src/source/ruleset.js';
import { CapacityResolver } from '../../src/track/capacity.js';
import { describeLive } from '../helpers/gate.js';

const NAT_IP = '198.51.100.1';

describeLive('ruleset capacity detection (live nft in a namespace)', () => {
  let lab: Lab;
  let ns: string;

  beforeAll(async () => {
    lab = await createLab({ prefix: 'nwb' });
    ns = lab.nsPath(lab.router);
  });
  afterAll(async () => {
    await lab?.destroy();
  });
  beforeEach(async () => {
    const r = await lab.exec(lab.router, 'nft', ['flush', 'ruleset']);
    expect(r.code).toBe(0);
  });

  /** One chain with one rule (nft 1.0.6 wants the rule on its own line). */
  const chain = (table: string, hook: string, rule: string) =>
    lab.nft(lab.router, `table ${table} {\n chain c {\n  ${hook};\n  ${rule}\n }\n}\n`);

  async function capacityFor(natIp: string, proto = 'tcp') {
    const w = new RulesetWatcher(ns);
    const { info } = await w.refresh();
    const cap = new CapacityResolver();
    cap.setDetected(info.nat);
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
    expect(cap).toEqual({ capacity: 10, addrs: 1, origin: 'ruleset' });
    // Only for the protocols the rule names: icmp would get the default.
    expect((await capacityFor(NAT_IP, 'sctp')).cap.origin).toBe('default');
  });

  it('masquerade without a range → the kernel default 1024-65535', async () => {
    await chain('ip nat', 'type nat hook postrouting priority 100', 'oifname "r-out" masquerade');
    expect((await capacityFor(NAT_IP)).cap).toEqual({ capacity: 64512, addrs: 1, origin: 'ruleset' });
  });

  it('masquerade on another interface does not apply to r-out\'s address', async () => {
    await chain('ip nat', 'type nat hook postrouting priority 100', 'oifname "r-in" meta l4proto tcp masquerade to :1000-1001');
    expect((await capacityFor(NAT_IP)).cap.origin).toBe('default');
    expect((await capacityFor('192.0.2.1')).cap.capacity).toBe(2);
  });

  it('snat to several addresses → the port range per address, and the address count', async () => {
    await chain('ip nat', 'type nat hook postrouting priority 100', 'oifname "r-out" meta l4proto tcp snat to 203.0.113.1-203.0.113.3:40000-40099');
    expect((await capacityFor('203.0.113.2')).cap).toEqual({ capacity: 100, addrs: 3, origin: 'ruleset' });
    expect((await capacityFor('203.0.113.4')).cap.origin).toBe('default');
  });

  it('iptables-nft MASQUERADE --to-ports (an xt target in nft -j) → read through iptables-nft-save', async () => {
    const r = await lab.exec(lab.router, 'iptables', ['-t', 'nat', '-A', 'POSTROUTING', '-o', 'r-out', '-p', 'tcp', '-j', 'MASQUERADE', '--to-ports', '50000-50009']);
    expect(r.code, r.stderr).toBe(0);
    const raw = await lab.exec(lab.router, 'nft', ['-j', 'list', 'ruleset']);
    expect(raw.stdout).toContain('"xt"'); // what this machine prints: the options are not in the JSON
    const { cap, info } = await capacityFor(NAT_IP);
    expect(info.nat).toMatchObject([{ kind: 'masquerade', origin: 'iptables', oifname: 'r-out', ports: [50000, 50009] }]);
    expect(cap.capacity).toBe(10);
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
});
