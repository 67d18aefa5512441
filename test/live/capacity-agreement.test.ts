// serve and doctor agree on capacity by construction: for the same live rulesets (native nft,
// iptables-nft, iptables-legacy, several SNAT addresses, per-interface rules, IPv6), the running
// streamer's resolver and doctor's snat-capacity resolution give the same number and source
// for every NAT address, and re-reading on a ruleset notification keeps them together.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLab, type Lab } from '../../src/lab/topology.js';
import { gatherFacts } from '../../src/doctor/facts.js';
import { natCapacity } from '../../src/doctor/checks-nat.js';
import { createStreamer, type Streamer } from '../../src/streamer.js';
import { until } from '../helpers/wait.js';
import { describeLive } from '../helpers/gate.js';

const NEEDS = { tools: ['ip', 'nft', 'iptables-nft', 'iptables-legacy', 'ip6tables-legacy'] };

interface Case {
  name: string;
  setup: Array<[string, string[]]>;
  /** NAT address → expected capacity (per address) and address count. */
  expect: Array<[string, number, number]>;
}

const CASES: Case[] = [
  { name: 'native nft masquerade', setup: [['nft', ['add table ip n; add chain ip n p { type nat hook postrouting priority 100; }; add rule ip n p oifname "r-out" meta l4proto { tcp, udp } masquerade to :50000-50009']]], expect: [['198.51.100.1', 10, 1]] },
  { name: 'iptables-nft SNAT to two addresses', setup: [['iptables-nft', ['-t', 'nat', '-A', 'POSTROUTING', '-o', 'r-out', '-p', 'tcp', '-j', 'SNAT', '--to-source', '203.0.113.1-203.0.113.2:1000-1049']]], expect: [['203.0.113.2', 50, 2], ['198.51.100.1', 64512, 1]] },
  { name: 'iptables-legacy MASQUERADE', setup: [['iptables-legacy', ['-t', 'nat', '-A', 'POSTROUTING', '-o', 'r-out', '-p', 'tcp', '-j', 'MASQUERADE', '--to-ports', '60000-60004']]], expect: [['198.51.100.1', 5, 1]] },
  { name: 'per-interface rules', setup: [['nft', ['add table ip n; add chain ip n p { type nat hook postrouting priority 100; }; add rule ip n p oifname "r-in" meta l4proto tcp masquerade to :1000-1002; add rule ip n p oifname "r-out" meta l4proto tcp masquerade to :2000-2006']]], expect: [['192.0.2.1', 3, 1], ['198.51.100.1', 7, 1]] },
  { name: 'IPv6 snat', setup: [['nft', ['add table ip6 n; add chain ip6 n p { type nat hook postrouting priority 100; }; add rule ip6 n p meta l4proto tcp snat to [2001:db8:2::1]:3000-3009']]], expect: [['2001:db8:2::1', 10, 1]] },
];

describeLive('serve and doctor compute the same capacity (live rulesets)', () => {
  let lab: Lab;
  let streamer: Streamer | undefined;

  beforeAll(async () => {
    lab = await createLab({ prefix: 'nwg', ipv6: true });
    streamer = createStreamer({ netns: lab.nsPath(lab.router), nflogGroups: [] });
    await streamer.start();
  });
  afterAll(async () => {
    await streamer?.close();
    await lab?.destroy();
  });

  for (const c of CASES) {
    it(c.name, async () => {
      await lab.exec(lab.router, 'nft', ['flush', 'ruleset']);
      for (const t of ['iptables-legacy', 'ip6tables-legacy']) await lab.exec(lab.router, t, ['-t', 'nat', '-F']);
      for (const [cmd, args] of c.setup) {
        const r = cmd === 'nft' ? await lab.exec(lab.router, 'nft', [args[0]!]) : await lab.exec(lab.router, cmd, args);
        expect(r.code, r.stderr).toBe(0);
      }
      const facts = await gatherFacts(lab.nsPath(lab.router));
      const serve = () => streamer!.tracker.capacity.nat('tcp', c.expect[0]![0], '198.51.100.8', 80);
      // Legacy tables send no notification: the streamer re-reads them on its slow timer; here
      // the test nudges it through the same path a notification takes.
      if (c.name.includes('legacy')) await streamer!.refreshRuleset();
      await until(`serve to pick up "${c.name}"`, () => serve().capacity === c.expect[0]![1], 5000);
      for (const [natIp, cap, addrs] of c.expect) {
        const s = streamer!.tracker.capacity.nat('tcp', natIp, '198.51.100.8', 80);
        const d = natCapacity(facts, 'tcp', natIp, '198.51.100.8', 80);
        expect(d, natIp).toEqual(s);
        expect(s, natIp).toMatchObject({ capacity: cap, addrs });
      }
    });
  }
}, NEEDS);
