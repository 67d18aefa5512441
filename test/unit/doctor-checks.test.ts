// Doctor checks over injected facts: the kernel facts captured from a real namespace
// (test/fixtures/facts-ruleset.hex) with chosen sysctls, and a chosen table summary.
import { describe, expect, it } from 'vitest';
import { mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDoctor, type FactReaders } from '../../src/doctor/index.js';
import { TableSummary, type CtSummary } from '../../src/doctor/conntrack-dump.js';
import { formatReport } from '../../src/doctor/format.js';
import { decodeFacts, type KernelFacts } from '../../src/source/facts-codec.js';
import { IPPROTO_TCP, IPPROTO_UDP } from '../../src/source/names.js';
import { readFixture } from '../fixtures/fixtures.js';

const ESTABLISHED = 3;
const TIME_WAIT = 7;

function table(): CtSummary {
  const t = new TableSummary();
  t.add(IPPROTO_TCP, ESTABLISHED, '192.0.2.5', '198.51.100.8', 80, '198.51.100.1');
  t.add(IPPROTO_TCP, ESTABLISHED, '192.0.2.6', '198.51.100.8', 80, '198.51.100.1');
  t.add(IPPROTO_TCP, TIME_WAIT, '192.0.2.6', '198.51.100.9', 443, '198.51.100.1');
  t.add(IPPROTO_UDP, -1, '192.0.2.5', '203.0.113.53', 53, '192.0.2.5');
  return t.summary();
}

describe('TableSummary', () => {
  it('counts states and source-NATed flows per (proto, NAT ip, dst, dport)', () => {
    const s = table();
    expect(s.entries).toBe(4);
    expect(s.byState).toEqual({ ESTABLISHED: 2, TIME_WAIT: 1 });
    expect(s.snat).toBe(3);
    expect(s.busiest[0]).toEqual({ proto: 'tcp', natIp: '198.51.100.1', dstIp: '198.51.100.8', dstPort: 80, flows: 2 });
  });
});

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

function readers(sysctl: Record<string, string>, summary: CtSummary = table(), kernel?: Partial<KernelFacts>): FactReaders {
  return {
    kernel: async () => ({ ...decodeFacts(readFixture('facts-ruleset').bytes), sysctls: new Map(Object.entries(sysctl)), ...kernel }),
    dumpTable: async () => summary,
  };
}

function nsFile(): string {
  // gatherFacts only checks the path is a namespace file (ours, through a link); the injected
  // readers answer for it.
  const dir = mkdtempSync(join(tmpdir(), 'nwc-ns-'));
  const p = join(dir, 'netns');
  symlinkSync('/proc/self/ns/net', p);
  return p;
}

describe('runDoctor over injected facts', () => {
  it('verdicts for a busy, under-hashed, event-less namespace', async () => {
    const ns = nsFile();
    const r = await runDoctor({ netns: ns, readers: readers({ ...BASE, 'net/netfilter/nf_conntrack_count': '250000', 'net/netfilter/nf_conntrack_buckets': '16384', 'net/netfilter/nf_conntrack_events': '0' }) });
    const by = new Map(r.checks.map((c) => [c.id, c]));
    expect(by.get('conntrack-count')).toMatchObject({ verdict: 'fail' });
    expect(by.get('conntrack-count')!.fix).toMatch(/nf_conntrack_max=524288/);
    expect(by.get('conntrack-buckets')).toMatchObject({ verdict: 'warn' });
    expect(by.get('conntrack-buckets')!.fix).toBe('echo 65536 > /sys/module/nf_conntrack/parameters/hashsize   # host-wide; only settable here or at module load');
    expect(by.get('conntrack-events')).toMatchObject({ verdict: 'fail', fix: `nsenter --net=${ns} sysctl -w net.netfilter.nf_conntrack_events=1` });
    expect(by.get('rcvbuf')!.verdict).toBe('info');
    expect(by.get('rcvbuf')!.finding).toMatch(/SO_RCVBUFFORCE/);
    expect(by.get('tcp-timeouts')!.verdict).toBe('warn');
  });

  it('healthy namespace: ok verdicts; snat-capacity takes the range of the rule that produced the NAT address', async () => {
    const r = await runDoctor({ netns: nsFile(), readers: readers({ ...BASE, 'net/core/rmem_max': String(64 << 20) }) });
    const by = new Map(r.checks.map((c) => [c.id, c]));
    for (const id of ['conntrack-active', 'conntrack-count', 'conntrack-buckets', 'conntrack-events', 'rcvbuf', 'snat-capacity']) {
      expect(by.get(id)!.verdict, id).toBe('ok');
      expect(by.get(id)!.fix, id).toBe(null);
    }
    // 198.51.100.1 is r-out's address: `oifname "r-out" masquerade to :50000-50009`.
    expect(by.get('snat-capacity')!.finding).toContain('2 flows through NAT address 198.51.100.1, capacity 10 ports per address (20%) × 1 address(es)');
    expect(by.get('nat-port-range')!.finding).toContain('50000-50009 (10 ports), 40000-40099 (100 ports)');
    const text = formatReport(r, false);
    expect(text.split('\n')[1]).toMatch(/^✓ ok   conntrack-active +conntrack in use by 14 NAT rule\(s\) and 2 conntrack-matching rule\(s\)/);
  });

  it('at the range size: snat-capacity fails with the wording serve alerts use', async () => {
    const t = new TableSummary();
    for (let i = 0; i < 10; i++) t.add(IPPROTO_TCP, ESTABLISHED, `192.0.2.${10 + i}`, '198.51.100.8', 80, '198.51.100.1');
    const r = await runDoctor({ netns: nsFile(), readers: readers(BASE, t.summary()) });
    const c = r.checks.find((x) => x.id === 'snat-capacity')!;
    expect(c.verdict).toBe('fail');
    expect(c.finding).toContain('capacity 10 ports per address (100%)');
  });

  it('an unreadable ruleset is said, and the capacity source is unknown', async () => {
    const r = await runDoctor({
      netns: nsFile(),
      readers: readers(BASE, table(), { rules: [], chains: [], setElems: [], errors: [{ section: 'nft', errno: 1, what: 'gettable' }] }),
    });
    const c = r.checks.find((x) => x.id === 'snat-capacity')!;
    expect(c).toMatchObject({ verdict: 'info', finding: 'ruleset unreadable (nf_tables ruleset unreadable: need CAP_NET_ADMIN)' });
  });

  it('an unknown namespace path is a one-line ENETNS error', async () => {
    await expect(runDoctor({ netns: '/nonexistent/nwc-ns' })).rejects.toMatchObject({ code: 'ENETNS' });
  });
});
