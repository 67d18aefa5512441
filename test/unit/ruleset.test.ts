import { describe, expect, it } from 'vitest';
import { parseIptablesSave, parseNftRuleset, RulesetWatcher } from '../../src/source/ruleset.js';
import { CapacityResolver } from '../../src/track/capacity.js';

// Captured on this machine (nftables 1.0.6, iptables 1.8.9 nf_tables) from a namespace holding:
//   oifname "r-out" meta l4proto { tcp, udp } masquerade to :50000-50009
//   oifname "x" masquerade
//   oifname "y" meta l4proto tcp snat to 203.0.113.1-203.0.113.3:40000-40099
//   oifname "z" snat to 203.0.113.7
//   oifname "w" snat ip to ip saddr map { 192.0.2.5 : 203.0.113.5 }
//   oifname "v" meta l4proto tcp snat ip to ip saddr map @m   (m: 192.0.2.0/24 : 203.0.113.9 . 41000-41009)
//   tcp dport 9999 log prefix "blocked-9999 " group 5 drop
//   oifname "p" meta l4proto tcp snat to 203.0.113.0/30
//   ip6: meta l4proto tcp snat to [2001:db8::1]:2000-2100
//   iptables -t nat -A POSTROUTING -o eth9 -p tcp -j MASQUERADE --to-ports 50000-50009   (xt in nft -j)
//   iptables -A INPUT -p udp --dport 99 -j NFLOG --nflog-group 7                         (log group 7 in nft -j)
const NFT = {"nftables":[{"metainfo":{"version":"1.0.6","release_name":"Lester Gooch #5","json_schema_version":1}},{"table":{"family":"ip","name":"nat","handle":1}},{"map":{"family":"ip","name":"m","table":"nat","type":"ipv4_addr","handle":2,"map":"ipv4_addr . inet_service","flags":["interval"],"elem":[[{"prefix":{"addr":"192.0.2.0","len":24}},{"concat":["203.0.113.9",{"range":[41000,41009]}]}]]}},{"chain":{"family":"ip","table":"nat","name":"post","handle":1,"type":"nat","hook":"postrouting","prio":100,"policy":"accept"}},{"chain":{"family":"ip","table":"nat","name":"POSTROUTING","handle":13,"type":"nat","hook":"postrouting","prio":100,"policy":"accept"}},{"rule":{"family":"ip","table":"nat","chain":"post","handle":4,"expr":[{"match":{"op":"==","left":{"meta":{"key":"oifname"}},"right":"r-out"}},{"match":{"op":"==","left":{"meta":{"key":"l4proto"}},"right":{"set":["tcp","udp"]}}},{"masquerade":{"port":{"range":[50000,50009]}}}]}},{"rule":{"family":"ip","table":"nat","chain":"post","handle":5,"expr":[{"match":{"op":"==","left":{"meta":{"key":"oifname"}},"right":"x"}},{"masquerade":null}]}},{"rule":{"family":"ip","table":"nat","chain":"post","handle":6,"expr":[{"match":{"op":"==","left":{"meta":{"key":"oifname"}},"right":"y"}},{"match":{"op":"==","left":{"meta":{"key":"l4proto"}},"right":"tcp"}},{"snat":{"addr":{"range":["203.0.113.1","203.0.113.3"]},"port":{"range":[40000,40099]}}}]}},{"rule":{"family":"ip","table":"nat","chain":"post","handle":7,"expr":[{"match":{"op":"==","left":{"meta":{"key":"oifname"}},"right":"z"}},{"snat":{"addr":"203.0.113.7"}}]}},{"rule":{"family":"ip","table":"nat","chain":"post","handle":9,"expr":[{"match":{"op":"==","left":{"meta":{"key":"oifname"}},"right":"w"}},{"snat":{"addr":{"map":{"key":{"payload":{"protocol":"ip","field":"saddr"}},"data":{"set":[["192.0.2.5","203.0.113.5"]]}}}}}]}},{"rule":{"family":"ip","table":"nat","chain":"post","handle":10,"expr":[{"match":{"op":"==","left":{"meta":{"key":"oifname"}},"right":"v"}},{"match":{"op":"==","left":{"meta":{"key":"l4proto"}},"right":"tcp"}},{"snat":{"family":"ip","addr":{"map":{"key":{"payload":{"protocol":"ip","field":"saddr"}},"data":"@m"}}}}]}},{"rule":{"family":"ip","table":"nat","chain":"post","handle":11,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":9999}},{"log":{"prefix":"blocked-9999 ","group":5}},{"drop":null}]}},{"rule":{"family":"ip","table":"nat","chain":"post","handle":12,"expr":[{"match":{"op":"==","left":{"meta":{"key":"oifname"}},"right":"p"}},{"match":{"op":"==","left":{"meta":{"key":"l4proto"}},"right":"tcp"}},{"snat":{"addr":{"prefix":{"addr":"203.0.113.0","len":30}}}}]}},{"rule":{"family":"ip","table":"nat","chain":"POSTROUTING","handle":14,"expr":[{"match":{"op":"==","left":{"meta":{"key":"oifname"}},"right":"eth9"}},{"match":{"op":"==","left":{"meta":{"key":"l4proto"}},"right":"tcp"}},{"counter":{"packets":0,"bytes":0}},{"xt":{"type":"target","name":"MASQUERADE"}}]}},{"table":{"family":"ip6","name":"nat6","handle":2}},{"chain":{"family":"ip6","table":"nat6","name":"p","handle":1,"type":"nat","hook":"postrouting","prio":100,"policy":"accept"}},{"rule":{"family":"ip6","table":"nat6","chain":"p","handle":2,"expr":[{"match":{"op":"==","left":{"meta":{"key":"l4proto"}},"right":"tcp"}},{"snat":{"addr":"2001:db8::1","port":{"range":[2000,2100]}}}]}},{"table":{"family":"ip","name":"filter","handle":3}},{"chain":{"family":"ip","table":"filter","name":"INPUT","handle":1,"type":"filter","hook":"input","prio":0,"policy":"accept"}},{"rule":{"family":"ip","table":"filter","chain":"INPUT","handle":2,"expr":[{"match":{"op":"==","left":{"payload":{"protocol":"udp","field":"dport"}},"right":99}},{"counter":{"packets":0,"bytes":0}},{"log":{"group":7}}]}}]};

const IPTABLES_NFT_SAVE = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -p udp -m udp --dport 99 -j NFLOG --nflog-group 7\nCOMMIT\n*nat\n:PREROUTING ACCEPT [0:0]\n:INPUT ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\n-A POSTROUTING -o eth9 -p tcp -j MASQUERADE --to-ports 50000-50009\nCOMMIT\n";

describe('parseNftRuleset', () => {
  const info = parseNftRuleset(NFT);

  it('finds masquerade and snat statements with their ranges, protocols and interfaces', () => {
    const by = (oif: string | null) => info.nat.filter((n) => n.oifname === oif);
    expect(by('r-out')).toEqual([{ kind: 'masquerade', family: 'ip', protos: ['tcp', 'udp'], oifname: 'r-out', addrs: null, ports: [50000, 50009], origin: 'nft' }]);
    expect(by('x')).toMatchObject([{ kind: 'masquerade', ports: null, protos: null }]);
    expect(by('y')).toMatchObject([{ kind: 'snat', addrs: [{ lo: '203.0.113.1', hi: '203.0.113.3' }], ports: [40000, 40099], protos: ['tcp'] }]);
    expect(by('z')).toMatchObject([{ kind: 'snat', addrs: [{ lo: '203.0.113.7', hi: '203.0.113.7' }], ports: null }]);
    expect(by('w')).toMatchObject([{ kind: 'snat', addrs: [{ lo: '203.0.113.5', hi: '203.0.113.5' }] }]);
    expect(by('v')).toMatchObject([{ kind: 'snat', addrs: [{ lo: '203.0.113.9', hi: '203.0.113.9' }], ports: [41000, 41009] }]);
    expect(by('p')).toMatchObject([{ kind: 'snat', addrs: [{ lo: '203.0.113.0', hi: '203.0.113.3' }] }]);
    expect(info.nat.find((n) => n.family === 'ip6')).toMatchObject({ kind: 'snat', addrs: [{ lo: '2001:db8::1' }], ports: [2000, 2100] });
  });

  it('collects log groups and notices iptables-nft targets whose options nft -j hides', () => {
    expect(info.groups).toEqual([5, 7]);
    expect([...info.xtFamilies]).toEqual(['ip']);
    expect(info.nat.some((n) => n.oifname === 'eth9')).toBe(false);
  });

  it('survives garbage', () => {
    expect(parseNftRuleset(null).nat).toEqual([]);
    expect(parseNftRuleset({ nftables: [{ rule: { expr: [null, 5, { snat: 1 }, { match: {} }] } }] }).groups).toEqual([]);
  });
});

describe('parseIptablesSave', () => {
  it('reads --to-ports, --to-source and NFLOG groups', () => {
    const r = parseIptablesSave(IPTABLES_NFT_SAVE, 'ip', 'iptables');
    expect(r.nat).toEqual([{ kind: 'masquerade', family: 'ip', protos: ['tcp'], oifname: 'eth9', addrs: null, ports: [50000, 50009], origin: 'iptables' }]);
    expect(r.groups).toEqual([7]);
    const s = parseIptablesSave(
      ['-A POSTROUTING -o eth+ -j SNAT --to-source 203.0.113.1-203.0.113.2:40000-40010', '-A POSTROUTING ! -o lo -j MASQUERADE', '-A X -j NFLOG'].join('\n'),
      'ip',
      'iptables-legacy',
    );
    expect(s.nat).toEqual([
      { kind: 'snat', family: 'ip', protos: null, oifname: 'eth*', addrs: [{ lo: '203.0.113.1', hi: '203.0.113.2' }], ports: [40000, 40010], origin: 'iptables-legacy' },
      { kind: 'masquerade', family: 'ip', protos: null, oifname: null, addrs: null, ports: null, origin: 'iptables-legacy' },
    ]);
    expect(s.groups).toEqual([0]);
    const v6 = parseIptablesSave('-A POSTROUTING -p tcp -j SNAT --to-source [2001:db8::1]:100-200', 'ip6', 'iptables');
    expect(v6.nat[0]).toMatchObject({ addrs: [{ lo: '2001:db8::1', hi: '2001:db8::1' }], ports: [100, 200] });
  });
});

describe('RulesetWatcher', () => {
  it('merges iptables-nft options, skips parsing when nothing changed, and feeds capacity', async () => {
    const calls: string[] = [];
    let nft = JSON.stringify(NFT);
    const w = new RulesetWatcher(null, async (cmd) => {
      calls.push(cmd);
      if (cmd === 'nft') return nft;
      if (cmd === 'iptables-nft-save') return IPTABLES_NFT_SAVE;
      const e = Object.assign(new Error('not installed'), { enoent: true });
      throw e;
    });
    const a = await w.refresh();
    expect(a.changed).toBe(true);
    expect(calls.slice(0, 2)).toEqual(['nft', 'iptables-nft-save']);
    expect(a.info.nat.find((n) => n.oifname === 'eth9')).toMatchObject({ ports: [50000, 50009], origin: 'iptables' });
    expect(a.info.groups).toEqual([5, 7]);
    expect((await w.refresh()).changed).toBe(false);
    nft = JSON.stringify({ nftables: [] });
    const c = await w.refresh();
    expect(c.changed).toBe(true);
    const cap = new CapacityResolver();
    cap.setDetected(a.info.nat);
    cap.setInterfaces(new Map([['r-out', ['198.51.100.1']], ['eth9', ['192.0.2.200']], ['y', ['203.0.113.1']]]));
    expect(cap.nat('tcp', '198.51.100.1', '198.51.100.8', 80).capacity).toBe(10);
    expect(cap.nat('tcp', '192.0.2.200', '198.51.100.8', 80).capacity).toBe(10);
    expect(cap.nat('tcp', '203.0.113.2', '198.51.100.8', 80)).toMatchObject({ capacity: 100, addrs: 3 });
    expect(cap.nat('tcp', '203.0.113.9', '198.51.100.8', 80).capacity).toBe(10);
  });

  it('a missing namespace is a one-line ENETNS error', async () => {
    await expect(new RulesetWatcher('/var/run/netns/nwb-does-not-exist').refresh()).rejects.toMatchObject({ code: 'ENETNS', message: "network namespace 'nwb-does-not-exist' not found (/var/run/netns/nwb-does-not-exist)" });
  });
});
