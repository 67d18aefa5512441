// Doctor checks over injected facts (an Exec that answers like nsenter/nft/conntrack would).
import { describe, expect, it } from 'vitest';
import { mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDoctor } from '../../src/doctor/index.js';
import { scanIptablesSave, scanRuleset } from '../../src/doctor/ruleset-scan.js';
import { parseConntrackList } from '../../src/doctor/conntrack-list.js';
import { formatReport } from '../../src/doctor/format.js';
import type { Exec } from '../../src/doctor/facts.js';

const RULESET = `table ip nat {
	chain POSTROUTING {
		type nat hook postrouting priority srcnat; policy accept;
		oifname "eth0" meta l4proto tcp counter packets 0 bytes 0 masquerade to :50000-50009
		oifname "eth1" meta l4proto tcp counter packets 0 bytes 0 snat to 203.0.113.1-203.0.113.4:1024-2047
	}
}
table inet f {
	set allowed {
		type ipv4_addr
		elements = { 192.0.2.1 }
	}
	chain fwd {
		type filter hook forward priority filter; policy drop;
		ct state established,related accept
		xt match "conntrack" counter accept
		ip saddr @allowed accept
	}
}
`;

const CT = `tcp      6 431999 ESTABLISHED src=192.0.2.5 dst=198.51.100.8 sport=40000 dport=80 src=198.51.100.8 dst=198.51.100.1 sport=80 dport=50000 [ASSURED] mark=0 use=1
tcp      6 431999 ESTABLISHED src=192.0.2.6 dst=198.51.100.8 sport=40001 dport=80 src=198.51.100.8 dst=198.51.100.1 sport=80 dport=50001 [ASSURED] mark=0 use=1
tcp      6 100 TIME_WAIT src=192.0.2.6 dst=198.51.100.9 sport=40002 dport=443 src=198.51.100.9 dst=198.51.100.1 sport=443 dport=50002 [ASSURED] mark=0 use=1
udp      17 29 src=192.0.2.5 dst=203.0.113.53 sport=5353 dport=53 [UNREPLIED] src=203.0.113.53 dst=192.0.2.5 sport=53 dport=5353 mark=0 use=1
`;

describe('scanRuleset', () => {
  it('finds NAT rules with ranges and addresses, and conntrack matches, skipping sets', () => {
    const s = scanRuleset(RULESET);
    expect(s.natChains).toBe(1);
    expect(s.natRules.map((r) => [r.kind, r.ports, r.addresses])).toEqual([
      ['masquerade', [50000, 50009], 1],
      ['snat', [1024, 2047], 4],
    ]);
    expect(s.ctRules).toHaveLength(2);
    expect(s.ctRules[0]).toContain('ct state established');
    expect(s.ruleCount).toBe(5);
  });
  it('an empty ruleset', () => {
    expect(scanRuleset('')).toEqual({ natRules: [], ctRules: [], natChains: 0, ruleCount: 0 });
  });
});

describe('scanIptablesSave (legacy rules nft cannot show)', () => {
  it('adds NAT targets with ranges and conntrack matches', () => {
    const save = `*nat
:POSTROUTING ACCEPT [0:0]
-A POSTROUTING -o eth0 -p tcp -j MASQUERADE --to-ports 50000-50009
-A POSTROUTING -o eth1 -j SNAT --to-source 203.0.113.1-203.0.113.2:1024-1535
COMMIT
*filter
-A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
-A INPUT -s 192.0.2.0/24 -j ACCEPT
COMMIT
`;
    const s = scanIptablesSave(save, scanRuleset(''));
    expect(s.natRules.map((r) => [r.table, r.kind, r.ports, r.addresses])).toEqual([
      ['legacy nat', 'masquerade', [50000, 50009], 1],
      ['legacy nat', 'snat', [1024, 1535], 2],
    ]);
    expect(s.ctRules).toEqual(['legacy filter FORWARD: -A FORWARD -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT']);
    expect(s.ruleCount).toBe(4);
  });
});

describe('parseConntrackList', () => {
  it('counts states and SNATed flows per (proto, NAT ip, dst, dport)', () => {
    const s = parseConntrackList(CT);
    expect(s.entries).toBe(4);
    expect(s.byState).toEqual({ ESTABLISHED: 2, TIME_WAIT: 1 });
    expect(s.snat).toBe(3);
    expect(s.busiest[0]).toEqual({ proto: 'tcp', natIp: '198.51.100.1', dstIp: '198.51.100.8', dstPort: 80, flows: 2 });
  });
});

function fakeExec(sysctl: Record<string, string>, ruleset: string, ct: string): Exec {
  return async (cmd, args) => {
    const inner = cmd === 'nsenter' ? args.slice(args.indexOf('--') + 1) : [cmd, ...args];
    if (inner[0] === 'sh') {
      const out = Object.entries(sysctl).map(([k, v]) => `${k}=${v}`).join('\n');
      return { code: 0, stdout: out + '\n', stderr: '' };
    }
    if (inner[0] === 'nft') return { code: 0, stdout: ruleset, stderr: '' };
    if (inner[0] === 'conntrack') return { code: 0, stdout: inner.includes('ipv6') ? '' : ct, stderr: '' };
    return { code: 127, stdout: '', stderr: 'not found' };
  };
}

const BASE = {
  'net/netfilter/nf_conntrack_count': '4',
  'net/netfilter/nf_conntrack_max': '262144',
  'net/netfilter/nf_conntrack_buckets': '65536',
  'net/netfilter/nf_conntrack_events': '1',
  'net/netfilter/nf_conntrack_tcp_timeout_time_wait': '120',
  'net/netfilter/nf_conntrack_tcp_timeout_established': '432000',
  'net/ipv4/ip_local_port_range': '32768 60999',
  'net/core/rmem_max': '212992',
};

function nsFile(): string {
  // gatherFacts only checks the path is a namespace file (ours, through a link); the fake exec
  // answers for it.
  const dir = mkdtempSync(join(tmpdir(), 'nwc-ns-'));
  const p = join(dir, 'netns');
  symlinkSync('/proc/self/ns/net', p);
  return p;
}

describe('runDoctor over injected facts', () => {
  it('verdicts for a busy, under-hashed, event-less namespace', async () => {
    const ns = nsFile();
    const exec = fakeExec({ ...BASE, 'net/netfilter/nf_conntrack_count': '250000', 'net/netfilter/nf_conntrack_buckets': '16384', 'net/netfilter/nf_conntrack_events': '0' }, RULESET, CT);
    const r = await runDoctor({ netns: ns, exec });
    const by = new Map(r.checks.map((c) => [c.id, c]));
    expect(by.get('conntrack-count')).toMatchObject({ verdict: 'fail' });
    expect(by.get('conntrack-count')!.fix).toMatch(/nf_conntrack_max=524288/);
    expect(by.get('conntrack-buckets')).toMatchObject({ verdict: 'warn' });
    expect(by.get('conntrack-buckets')!.fix).toBe('echo 65536 > /sys/module/nf_conntrack/parameters/hashsize   # host-wide; only settable here or at module load');
    expect(by.get('conntrack-events')).toMatchObject({ verdict: 'fail', fix: `nsenter --net=${ns} sysctl -w net.netfilter.nf_conntrack_events=1` });
    expect(by.get('rcvbuf')!.verdict).toBe('info');
    expect(by.get('rcvbuf')!.finding).toMatch(/SO_RCVBUFFORCE/);
    // count over the dump limit: the table is not dumped and snat-capacity says why
    expect(by.get('snat-capacity')!.finding).toMatch(/not dumped/);
    expect(by.get('tcp-timeouts')!.verdict).toBe('warn');
  });

  it('healthy namespace: ok verdicts and no fixes where none is needed', async () => {
    const exec = fakeExec({ ...BASE, 'net/core/rmem_max': String(64 << 20) }, RULESET, CT);
    const r = await runDoctor({ netns: nsFile(), exec });
    const by = new Map(r.checks.map((c) => [c.id, c]));
    for (const id of ['conntrack-active', 'conntrack-count', 'conntrack-buckets', 'conntrack-events', 'rcvbuf', 'snat-capacity']) {
      expect(by.get(id)!.verdict, id).toBe('ok');
      expect(by.get(id)!.fix, id).toBe(null);
    }
    expect(by.get('snat-capacity')!.finding).toContain('2 flows through NAT address 198.51.100.1, capacity 10 ports per address (20%) × 4 address(es)');
    expect(by.get('nat-port-range')!.finding).toContain('50000-50009 (10 ports), 1024-2047 (1024 ports)');
    const text = formatReport(r, false);
    expect(text.split('\n')[1]).toMatch(/^✓ ok   conntrack-active +conntrack in use by 2 NAT rule\(s\)/);
  });

  it('an unknown namespace path is a one-line ENETNS error', async () => {
    await expect(runDoctor({ netns: '/nonexistent/nwc-ns' })).rejects.toMatchObject({ code: 'ENETNS' });
  });
});
