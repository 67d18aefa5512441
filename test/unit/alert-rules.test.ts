// Every alert rule driven through the real Streamer with a synthetic source and a fake clock.
import { afterEach, describe, expect, it } from 'vitest';
import { FakeClock } from '../../src/alert/clock.js';
import { Streamer } from '../../src/streamer.js';
import { SyntheticSource, plainFlow, snatFlow, type SynthCt } from '../../src/source/synthetic.js';
import { CtKind } from '../../src/source/types.js';
import type { Alert } from '../../src/types.js';

const NAT = '198.51.100.1';
const DST = '198.51.100.8';
const TS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

let open: Streamer[] = [];
afterEach(async () => {
  for (const s of open) await s.close();
  open = [];
});

async function harness(opts: ConstructorParameters<typeof Streamer>[0] = {}, table?: () => SynthCt[]) {
  const clock = new FakeClock(Date.UTC(2026, 0, 1, 0, 0, 0));
  const src = new SyntheticSource({ now: () => clock.now(), table });
  const s = new Streamer({ source: src, clock, localAddrs: ['192.0.2.1'], ...opts });
  open.push(s);
  const alerts: Alert[] = [];
  s.on('alert', (a) => alerts.push(a));
  await s.start();
  let nextId = 1;
  const flows = new Map<number, SynthCt>();
  const h = {
    clock, src, s, alerts,
    /** n new SNAT flows to DST:dport via natIp; returns their ids. */
    open(n: number, natIp = NAT, dport = 80): number[] {
      const recs: SynthCt[] = [];
      for (let i = 0; i < n; i++) {
        const id = nextId++;
        const r = snatFlow(CtKind.New, id, { src: '192.0.2.5', sport: 30000 + id, dst: DST, dport, natIp, natPort: 50000 + (id % 1000) });
        flows.set(id, r);
        recs.push(r);
      }
      src.conntrack(recs);
      return recs.map((r) => r.id);
    },
    openLocal(n: number): void {
      const recs: SynthCt[] = [];
      for (let i = 0; i < n; i++) {
        const id = nextId++;
        const r = plainFlow(CtKind.New, id, { src: '192.0.2.1', sport: 40000 + i, dst: DST, dport: 443 });
        flows.set(id, r);
        recs.push(r);
      }
      src.conntrack(recs);
    },
    close(ids: number[]): void {
      src.conntrack(ids.map((id) => ({ ...flows.get(id)!, kind: CtKind.Destroy })));
      for (const id of ids) flows.delete(id);
    },
    live: () => [...flows.values()],
    /** Raise insert_failed and drop by n (one failed insert counts in both). */
    drop(n: number): void {
      const c = src.snapshot.counters;
      c.insert_failed += n;
      c.drop += n;
    },
    /** Advance the clock one tick (or ms) and let the tick's promise settle. */
    async step(ms = 1000): Promise<void> {
      clock.advance(ms);
      await new Promise((r) => setImmediate(r));
    },
    of: (kind: Alert['kind']) => alerts.filter((a) => a.kind === kind),
  };
  return h;
}

describe('nat_port_exhaustion', () => {
  it('warns at 80% with an ETA from the trend, escalates at 95%, resolves below 70% (hysteresis)', async () => {
    const h = await harness({ natPorts: [1, 100] });
    const ids: number[] = [];
    for (let t = 0; t < 7; t++) {
      ids.push(...h.open(10)); // a steady 10/s climb
      await h.step();
    }
    expect(h.alerts).toEqual([]); // 70%
    ids.push(...h.open(10));
    await h.step();
    const [w] = h.of('nat_port_exhaustion');
    expect(w).toMatchObject({ severity: 'warning', state: 'firing', key: { proto: 'tcp', natIp: NAT, dstIp: DST, dstPort: 80 }, used: 80, capacity: 100, utilization: 0.8, drops: 0 });
    expect(w!.etaSeconds).toBe(2); // 20 ports left at 10/s
    expect(w!.message).toContain('full in about 2 s');
    // Steady at 80%: not re-sent on later ticks.
    await h.step();
    await h.step();
    expect(h.of('nat_port_exhaustion')).toHaveLength(1);
    ids.push(...h.open(15));
    await h.step();
    const c = h.of('nat_port_exhaustion')[1]!;
    expect(c).toMatchObject({ severity: 'critical', state: 'firing', used: 95 });
    expect(c.seq).toBeGreaterThan(w!.seq);
    // 95 → 75 → exactly 70: inside the band, still firing, nothing sent, severity kept.
    h.close(ids.splice(0, 20));
    await h.step();
    expect(h.of('nat_port_exhaustion')).toHaveLength(2);
    expect(h.s.firing()[0]).toMatchObject({ severity: 'critical', used: 75 });
    h.close(ids.splice(0, 5));
    await h.step();
    expect(h.of('nat_port_exhaustion')).toHaveLength(2);
    expect(h.s.firing()[0]).toMatchObject({ used: 70, utilization: 0.7 });
    // 70 → 69: resolved.
    h.close(ids.splice(0, 1));
    await h.step();
    const r = h.of('nat_port_exhaustion')[2]!;
    expect(r).toMatchObject({ state: 'resolved', used: 69, capacity: 100 });
    expect(h.s.firing()).toEqual([]);
    // Crossing 80% again fires a new alert.
    h.open(11);
    await h.step();
    expect(h.of('nat_port_exhaustion')[3]).toMatchObject({ state: 'firing', severity: 'warning', used: 80 });
  });

  it('is critical when drops rise at capacity, attributes them and names destination and fix', async () => {
    const h = await harness({ natPorts: [50000, 50009] });
    h.open(10);
    await h.step();
    expect(h.alerts[0]).toMatchObject({ severity: 'critical', used: 10, capacity: 10, utilization: 1, drops: 0, etaSeconds: 0 });
    h.drop(5);
    await h.step(); // drops grew: re-sent (more than resendMs since the first send? no: 1 s) ...
    // ... the first send was 1 s ago, so the growth waits for the rate limit.
    expect(h.alerts).toHaveLength(1);
    await h.step(4000);
    const a = h.alerts[1]!;
    expect(a).toMatchObject({ kind: 'nat_port_exhaustion', severity: 'critical', drops: 5 });
    expect(a.message).toBe(
      'NAT source ports for tcp 198.51.100.1 → 198.51.100.8:80 are exhausted: 10/10 in use, 5 connection attempts dropped; widen the masquerade port range or add SNAT addresses',
    );
    expect(h.of('conntrack_drops')).toEqual([]);
  });

  it('escalates a warning at capacity to critical as soon as drops are attributed to it', async () => {
    // portCritical above 1 takes utilization out of the picture: only the drops can escalate.
    const h = await harness({ natPorts: [1, 10], thresholds: { portWarning: 0.8, portCritical: 1.01, portResolve: 0.7 } });
    h.open(10);
    await h.step();
    expect(h.alerts.map((a) => a.severity)).toEqual(['warning']);
    await h.step();
    expect(h.alerts).toHaveLength(1);
    h.drop(2);
    await h.step(); // escalation is sent at once (no rate limit)
    expect(h.alerts[1]).toMatchObject({ severity: 'critical', drops: 2, used: 10, capacity: 10 });
  });

  it('drops at capacity fire even when the utilization thresholds are out of reach', async () => {
    const h = await harness({ natPorts: [1, 10], thresholds: { portWarning: 1.5, portCritical: 2, portResolve: 0.7 } });
    h.open(10);
    await h.step();
    expect(h.alerts).toEqual([]);
    h.drop(1);
    await h.step();
    expect(h.alerts[0]).toMatchObject({ severity: 'critical', drops: 1 });
  });

  it('re-sends on growing drops at most once per resendMs, never every tick', async () => {
    const h = await harness({ natPorts: [50000, 50009] });
    h.open(10);
    await h.step();
    for (let t = 0; t < 12; t++) {
      h.drop(2);
      await h.step();
    }
    const sent = h.of('nat_port_exhaustion');
    // first send at t=1 s, growth re-sends at t=6 s and t=11 s
    expect(sent.map((a) => a.drops)).toEqual([0, 10, 20]);
    const times = sent.map((a) => Date.parse(a.ts));
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(5000);
    expect(times[2]! - times[1]!).toBeGreaterThanOrEqual(5000);
    for (let i = 1; i < sent.length; i++) expect(sent[i]!.seq).toBeGreaterThan(sent[i - 1]!.seq);
    for (const a of sent) expect(a.ts).toMatch(TS);
  });

  it('splits a tick\'s drops across the keys at capacity only', async () => {
    const h = await harness({ natPorts: [1, 4] });
    h.open(4, NAT, 80);
    h.open(4, NAT, 443);
    h.open(2, NAT, 8080);
    await h.step(6000);
    h.drop(5);
    await h.step();
    await h.step(5000);
    const by = (p: number) => h.of('nat_port_exhaustion').filter((a) => (a.key as { dstPort: number }).dstPort === p).at(-1)!;
    expect(by(80).drops + by(443).drops).toBe(5);
    expect([by(80).drops, by(443).drops].sort()).toEqual([2, 3]);
    expect(h.of('nat_port_exhaustion').some((a) => (a.key as { dstPort: number }).dstPort === 8080)).toBe(false);
  });

  it('says each source is pinned to one address when the rule has several SNAT addresses', async () => {
    const h = await harness({ natRules: [] });
    h.s.tracker.capacity.setDetected([
      { kind: 'snat', family: 'ip', protos: null, oifname: null, addrs: [{ lo: '203.0.113.1', hi: '203.0.113.3' }], ports: [40000, 40009], origin: 'nft' },
    ]);
    h.open(10, '203.0.113.2');
    await h.step();
    expect(h.alerts[0]).toMatchObject({ key: { natIp: '203.0.113.2' }, capacity: 10, severity: 'critical' });
    expect(h.alerts[0]!.message).toContain('pinned to one of the 3 SNAT addresses');
  });

  it('resolves when the key\'s flows all close', async () => {
    const h = await harness({ natPorts: [50000, 50009] });
    const ids = h.open(10);
    await h.step();
    h.close(ids);
    await h.step();
    expect(h.alerts.map((a) => a.state)).toEqual(['firing', 'resolved']);
    expect(h.alerts[1]).toMatchObject({ used: 0, utilization: 0 });
  });
});

describe('IPv6 keys', () => {
  it('keys NAT66 flows and brackets the address in the message', async () => {
    const h = await harness({ natPorts: [50000, 50009] });
    h.src.conntrack(Array.from({ length: 10 }, (_, i) =>
      snatFlow(CtKind.New, 900 + i, { family: 6, src: '2001:db8:1::5', sport: 1000 + i, dst: '2001:db8:2::8', dport: 80, natIp: '2001:db8:2::1', natPort: 50000 + i })));
    await h.step();
    expect(h.alerts[0]).toMatchObject({ key: { proto: 'tcp', natIp: '2001:db8:2::1', dstIp: '2001:db8:2::8', dstPort: 80 }, used: 10, capacity: 10 });
    expect(h.alerts[0]!.message).toMatch(/^NAT source ports for tcp 2001:db8:2::1 → \[2001:db8:2::8\]:80 are exhausted/);
  });
});

describe('refresh dumps while a port alert fires', () => {
  it('re-dumps every refreshDumpMs while firing (expired entries are reaped), not otherwise', async () => {
    let h!: Awaited<ReturnType<typeof harness>>;
    h = await harness({ natPorts: [50000, 50009], thresholds: { refreshDumpMs: 5000 } }, () => table);
    let table: SynthCt[] = [];
    const ids = h.open(10);
    table = h.live();
    await h.step();
    expect(h.alerts[0]).toMatchObject({ state: 'firing', used: 10 });
    expect(h.src.resyncs).toBe(1); // first refresh right away
    await h.step(4000);
    expect(h.src.resyncs).toBe(1);
    // The kernel expired 4 entries without a DESTROY yet: the next dump no longer has them.
    table = h.live().filter((r) => !ids.slice(0, 4).includes(r.id));
    await h.step(1000);
    expect(h.src.resyncs).toBe(2);
    await h.step();
    expect(h.alerts.at(-1)).toMatchObject({ state: 'resolved', used: 6 });
    await h.step(20_000);
    expect(h.src.resyncs).toBe(2); // nothing firing: no more dumps
  });

  it('does not re-dump a table larger than refreshDumpMaxCount', async () => {
    const h = await harness({ natPorts: [50000, 50009], thresholds: { refreshDumpMaxCount: 5 } });
    h.src.snapshot.count = 6;
    h.open(10);
    await h.step(30_000);
    expect(h.alerts[0]).toMatchObject({ state: 'firing' });
    expect(h.src.resyncs).toBe(0);
  });
});

describe('local_port_exhaustion', () => {
  it('uses ip_local_port_range minus reserved ports as capacity', async () => {
    const h = await harness();
    h.src.snapshot.limits.localPortRange = [40000, 40011];
    h.src.snapshot.limits.reservedPorts = [[40010, 40011]];
    h.openLocal(10);
    await h.step();
    const a = h.of('local_port_exhaustion')[0]!;
    expect(a).toMatchObject({ severity: 'critical', key: { proto: 'tcp', natIp: '192.0.2.1', dstIp: DST, dstPort: 443 }, used: 10, capacity: 10 });
    expect(a.message).toMatch(/^Local source ports from 192\.0\.2\.1 to tcp 198\.51\.100\.8:443 are exhausted: 10\/10 in use; widen net\.ipv4\.ip_local_port_range/);
  });
});

describe('conntrack_table_full', () => {
  it('warns at 90%, escalates at 95%, holds in the band, resolves below 85%', async () => {
    const h = await harness();
    const snap = h.src.snapshot;
    snap.limits.max = 1000;
    snap.count = 899;
    await h.step();
    expect(h.alerts).toEqual([]);
    snap.count = 900;
    await h.step();
    expect(h.alerts[0]).toMatchObject({ kind: 'conntrack_table_full', severity: 'warning', key: {}, used: 900, capacity: 1000, utilization: 0.9 });
    snap.count = 950;
    await h.step();
    expect(h.alerts[1]).toMatchObject({ severity: 'critical', used: 950 });
    snap.count = 860;
    await h.step();
    expect(h.alerts).toHaveLength(2);
    snap.count = 849;
    await h.step();
    expect(h.alerts[2]).toMatchObject({ state: 'resolved', used: 849 });
  });

  it('is critical on early_drop, counts table drops, and does not blame keys or conntrack_drops', async () => {
    const h = await harness({ natPorts: [1, 2] });
    h.open(2);
    const snap = h.src.snapshot;
    snap.limits.max = 100;
    snap.count = 91;
    await h.step(6000);
    h.alerts.length = 0;
    snap.counters.early_drop += 3;
    snap.counters.drop += 4;
    await h.step();
    const t = h.of('conntrack_table_full');
    expect(t.at(-1)).toMatchObject({ severity: 'critical', drops: 7 });
    expect(t.at(-1)!.message).toContain('raise net.netfilter.nf_conntrack_max');
    expect(h.of('conntrack_drops')).toEqual([]);
    expect(h.of('nat_port_exhaustion')).toEqual([]); // drops went to the table, not to the full key
  });
});

describe('conntrack_drops', () => {
  it('warns with the counter deltas when drops rise with no key at capacity, resolves after the quiet period', async () => {
    const h = await harness({ natPorts: [1, 100], thresholds: { dropsQuietMs: 10_000 } });
    h.open(5);
    await h.step();
    const c = h.src.snapshot.counters;
    c.insert_failed += 3;
    c.drop += 3;
    c.clash_resolve += 7;
    await h.step();
    expect(h.of('conntrack_drops')).toEqual([]); // held ≥ 150 ms: a NEW that explains them may still wait in a batch
    await h.step(200);
    const a = h.of('conntrack_drops')[0]!;
    expect(a).toMatchObject({ severity: 'warning', state: 'firing', key: {}, used: null, capacity: null, utilization: null, drops: 3 });
    expect(a.detail).toMatchObject({ insert_failed: 3, drop: 3, clash_resolve: 7, early_drop: 0 });
    await h.step(9000);
    expect(h.of('conntrack_drops')).toHaveLength(1);
    await h.step(1000);
    expect(h.of('conntrack_drops')[1]).toMatchObject({ state: 'resolved', drops: 3 });
  });
});

describe('nflog_drop', () => {
  const pkt = (n: number, dport = 9999) =>
    Array.from({ length: n }, () => ({ group: 5, prefix: 'blocked-9999 ', src: '192.0.2.5', dst: DST, sport: 40000, dport }));

  it('fires on the first packets, grows rate-limited, resolves after the quiet period', async () => {
    const h = await harness({ thresholds: { nflogQuietMs: 30_000 } });
    h.src.nflog(pkt(3));
    expect(h.alerts[0]).toMatchObject({
      kind: 'nflog_drop', severity: 'warning', state: 'firing', drops: 3,
      key: { prefix: 'blocked-9999 ', group: 5, proto: 'tcp', dstIp: DST, dstPort: 9999 },
    });
    expect(h.alerts[0]!.message).toBe('Packets to tcp 198.51.100.8:9999 are dropped by the rule logging "blocked-9999" (NFLOG group 5): 3 packets so far; if this traffic is wanted, change that rule');
    h.src.nflog(pkt(2));
    await h.step();
    expect(h.alerts).toHaveLength(1); // growth within resendMs of the first send
    await h.step(4000);
    expect(h.alerts).toHaveLength(1); // no new packets since the last tick: nothing to re-send
    h.src.nflog(pkt(1));
    await h.step();
    expect(h.alerts[1]).toMatchObject({ state: 'firing', drops: 6 });
    h.src.nflog(pkt(1, 22)); // another key fires on its own
    expect(h.alerts[2]).toMatchObject({ key: { dstPort: 22 }, drops: 1 });
    const resolvedPorts = () => h.alerts.filter((a) => a.state === 'resolved').map((a) => (a.key as { dstPort: number }).dstPort);
    await h.step(28_000); // 9999's last packet was 29 s ago, 22's 28 s ago
    expect(resolvedPorts()).toEqual([]);
    await h.step(1000);
    expect(resolvedPorts()).toEqual([9999]);
    await h.step(1000);
    expect(resolvedPorts()).toEqual([9999, 22]);
    expect(h.alerts.at(-1)).toMatchObject({ drops: 1, state: 'resolved' });
  });
});

describe('nflog_drop aggregate (a scan hitting one rule)', () => {
  const scan = (ports: number[], group = 5, prefix = 'blocked ') => ports.map((p) => ({ group, prefix, src: '192.0.2.5', dst: DST, sport: 40000, dport: p }));

  it('a 900-port scan: 20 per-destination alerts, then one aggregate for the rule', async () => {
    const h = await harness({ thresholds: { nflogQuietMs: 30_000 } });
    const ports = Array.from({ length: 900 }, (_, i) => 1 + i);
    // Port 900 is hit 5 times, 899 four times...: they lead the top list.
    h.src.nflog(scan([...ports, 900, 900, 900, 900, 899, 899, 899, 898, 898]));
    const per = h.of('nflog_drop').filter((a) => a.key && (a.key as { dstIp: unknown }).dstIp !== null);
    expect(per).toHaveLength(20);
    expect(per.map((a) => (a.key as { dstPort: number }).dstPort)).toEqual(ports.slice(0, 20));
    const agg = h.of('nflog_drop').filter((a) => (a.key as { dstIp: unknown }).dstIp === null);
    expect(agg).toHaveLength(1);
    expect(agg[0]).toMatchObject({
      kind: 'nflog_drop', severity: 'warning', state: 'firing',
      key: { prefix: 'blocked ', group: 5, proto: null, dstIp: null, dstPort: null },
      destinations: 880, drops: 880 + 9, used: null, capacity: null,
    });
    const top = (agg[0]!.detail as { top: Array<{ dstPort: number; packets: number }> }).top;
    expect(top).toHaveLength(10);
    expect(top.slice(0, 3)).toEqual([
      { proto: 'tcp', dstIp: DST, dstPort: 900, packets: 5 },
      { proto: 'tcp', dstIp: DST, dstPort: 899, packets: 4 },
      { proto: 'tcp', dstIp: DST, dstPort: 898, packets: 3 },
    ]);
    expect(agg[0]!.message).toMatch(/^Packets to 880 more destinations \(beyond the 20 alerted one by one\) were dropped by the rule logging "blocked" \(NFLOG group 5\): 889 packets so far; top 10: tcp 198\.51\.100\.8:900 \(5\), tcp 198\.51\.100\.8:899 \(4\), tcp 198\.51\.100\.8:898 \(3\), /);
    // Another rule keeps its own cap.
    h.src.nflog(scan([1, 2], 6, 'other '));
    expect(h.alerts.slice(-2).map((a) => (a.key as { group: number; dstPort: number }).dstPort)).toEqual([1, 2]);
    // More of the scan: grows the aggregate (re-sent rate-limited), no new per-destination alert.
    const before = h.alerts.length;
    h.src.nflog(scan([901, 902, 5]));
    await h.step(5000);
    const after = h.alerts.slice(before);
    expect(after).toHaveLength(2);
    expect(after.find((a) => (a.key as { dstIp: unknown }).dstIp === null)).toMatchObject({ destinations: 882, drops: 891 });
    expect(after.find((a) => (a.key as { dstPort: unknown }).dstPort === 5)).toMatchObject({ drops: 2 });
    // Quiet: every per-destination alert and the aggregate resolve; nothing fires after.
    await h.step(30_000);
    const resolved = h.alerts.filter((a) => a.state === 'resolved');
    expect(resolved).toHaveLength(20 + 1 + 2);
    expect(resolved.find((a) => (a.key as { dstIp: unknown }).dstIp === null)).toMatchObject({ destinations: 882, drops: 891 });
    expect(h.s.firing()).toEqual([]);
    // The slots are free again: a new destination gets its own alert.
    h.src.nflog(scan([7000]));
    expect(h.alerts.at(-1)).toMatchObject({ state: 'firing', key: { dstPort: 7000 } });
  });

  it('a per-destination slot freed while the aggregate fires goes to a new destination; aggregated ones stay there', async () => {
    const h = await harness({ thresholds: { nflogQuietMs: 10_000, nflogMaxPerRule: 2 } });
    h.src.nflog(scan([1, 2, 3]));
    await h.step(6000);
    h.src.nflog(scan([2, 3])); // 2 stays alive, 1 goes quiet; 3 is in the aggregate
    await h.step(4000);
    expect(h.alerts.filter((a) => a.state === 'resolved').map((a) => (a.key as { dstPort: number }).dstPort)).toEqual([1]);
    h.src.nflog(scan([4, 3]));
    const last = h.alerts.slice(-1)[0]!;
    expect(last).toMatchObject({ state: 'firing', key: { dstPort: 4 } });
    await h.step(5000);
    expect(h.of('nflog_drop').filter((a) => (a.key as { dstIp: unknown }).dstIp === null).at(-1)).toMatchObject({ destinations: 1, drops: 3 });
  });
});

describe('nflog_drop bounds', () => {
  it('tracks at most nflogMaxKeys keys and counts packets beyond', async () => {
    const h = await harness({ thresholds: { nflogMaxKeys: 2 } });
    h.src.nflog([1, 2, 3, 3].map((p) => ({ group: 1, src: '192.0.2.5', dst: DST, dport: p })));
    expect(h.of('nflog_drop').map((a) => (a.key as { dstPort: number }).dstPort)).toEqual([1, 2]);
    expect(h.of('nflog_drop')[0]!.message).toContain('a rule logging to NFLOG group 1');
  });
});

describe('event_loss', () => {
  it('is critical with counts, triggers a resync, and resolves when that dump ends with state rebuilt', async () => {
    let h!: Awaited<ReturnType<typeof harness>>;
    h = await harness({ natPorts: [1, 100] }, () => h.live());
    const ids = h.open(10);
    await h.step();
    // The kernel destroyed 4 flows but the DESTROY events were lost.
    const gone = ids.slice(0, 4);
    h.live().filter((r) => gone.includes(r.id)).forEach((r) => (r as SynthCt & { gone?: boolean }).gone = true);
    const table = h.live().filter((r) => !gone.includes(r.id));
    (h.src as unknown as { opts: { table: () => SynthCt[] } }).opts.table = () => table;
    // No kernel drop count (unreadable): each ENOBUFS stands for at least one event.
    h.src.loss({ source: 'conntrack', enobufs: 2, dropped: 4 });
    expect(h.src.resyncs).toBe(1);
    // The dump ran at once (synthetic table); the episode ends after the quiet period.
    expect(h.of('event_loss')).toHaveLength(1);
    await h.step(10_000);
    const [fire, resolved] = h.of('event_loss');
    expect(fire).toMatchObject({ severity: 'critical', state: 'firing', key: {}, drops: 6, detail: { conntrack: { enobufs: 2, dropped: 4, seqGap: 0 } } });
    expect(resolved).toMatchObject({ state: 'resolved' });
    expect(resolved!.seq).toBeGreaterThan(fire!.seq);
    const k = h.s.tracker.keys.find(`tcp|${NAT}|${DST}|80|N`);
    expect(h.s.tracker.keys.used(k)).toBe(6);
    expect(h.s.totals().eventsLost.conntrack).toBe(6);
  });

  it('counts the events the kernel dropped, not the ENOBUFS returns that announced them', async () => {
    const h = await harness({ thresholds: { minResyncMs: 60_000 } });
    // One ENOBUFS for 3987 events the kernel could not queue, 13 records lost in our own queue.
    h.src.loss({ source: 'conntrack', enobufs: 1, kernelDrops: 3987, dropped: 13 });
    const [fire] = h.of('event_loss');
    expect(fire).toMatchObject({
      state: 'firing',
      drops: 4000,
      detail: { conntrack: { enobufs: 1, kernelDrops: 3987, dropped: 13, seqGap: 0, lost: 4000 } },
    });
    expect(fire!.message).toMatch(/^natwatch lost 4000 events \(conntrack: 3987 the kernel could not queue \(ENOBUFS ×1\), 13 lost in the reader\)/);
    await h.step(5000); // past resendMs: a grown total is sent
    // The counter read after draining adds what was dropped while the socket stayed congested;
    // a late ENOBUFS for drops already counted adds nothing.
    h.src.loss({ source: 'conntrack', kernelDrops: 20 });
    const last = h.of('event_loss').at(-1)!;
    expect(last).toMatchObject({ state: 'firing', drops: 4020, detail: { conntrack: { enobufs: 1, kernelDrops: 4007, lost: 4020 } } });
    expect(last.message).toContain('natwatch lost 4020 events');
    const sent = h.of('event_loss').length;
    h.src.loss({ source: 'conntrack', enobufs: 1 });
    await h.step(5000);
    expect(h.of('event_loss')).toHaveLength(sent); // drops did not grow: nothing re-sent
    expect(h.s.totals().eventsLost).toEqual({ conntrack: 4020, nflog: 0 });
  });

  it('an NFLOG packet lost by the kernel is one event, though both its drop counter and the sequence gap show it', async () => {
    const h = await harness({ thresholds: { lossQuietSeconds: 60 } });
    h.src.loss({ source: 'nflog', enobufs: 1, kernelDrops: 7 });
    expect(h.of('event_loss')[0]).toMatchObject({ drops: 7, detail: { nflog: { enobufs: 1, kernelDrops: 7, seqGap: 0, lost: 7 } } });
    await h.step(5000); // past resendMs
    h.src.loss({ source: 'nflog', seqGap: 7 }); // noticed when the next packet arrives
    h.src.loss({ source: 'nflog', dropped: 2 });
    expect(h.s.totals().eventsLost).toEqual({ conntrack: 0, nflog: 9 });
    expect(h.of('event_loss').at(-1)).toMatchObject({ drops: 9, detail: { nflog: { kernelDrops: 7, seqGap: 7, dropped: 2, lost: 9 } } });
  });

  it('loss during the resync dump keeps it firing and resyncs again (spaced by minResyncMs)', async () => {
    const h = await harness({ thresholds: { minResyncMs: 2000 } });
    h.src.loss({ source: 'conntrack', enobufs: 1 });
    expect(h.src.resyncs).toBe(1); // no table: the dump is driven by hand
    h.src.dumpBegin();
    h.src.loss({ source: 'conntrack', enobufs: 1 });
    h.src.dumpEnd();
    expect(h.of('event_loss').map((a) => a.state)).toEqual(['firing']);
    expect(h.src.resyncs).toBe(1);
    await h.step(2000);
    expect(h.src.resyncs).toBe(2);
    h.src.dump([]);
    // Clean dump, but the quiet period (10 s from the last loss) is not over yet.
    expect(h.of('event_loss').map((a) => a.state)).toEqual(['firing']);
    await h.step(8000);
    expect(h.of('event_loss').map((a) => a.state)).toEqual(['firing', 'resolved']);
  });

  it('loss during a dump it did not ask for waits for that dump to end, then dumps again', async () => {
    const h = await harness();
    h.src.dumpBegin(); // e.g. the initial dump after subscribing
    h.src.loss({ source: 'conntrack', dropped: 3 });
    expect(h.src.resyncs).toBe(0);
    h.src.dumpEnd();
    expect(h.src.resyncs).toBe(1);
    expect(h.of('event_loss').map((a) => a.state)).toEqual(['firing']);
    h.src.dump([]);
    await h.step(10_000);
    expect(h.of('event_loss').map((a) => a.state)).toEqual(['firing', 'resolved']);
  });

  it('a resync whose dump never ends is retried after resyncTimeoutMs', async () => {
    const h = await harness({ thresholds: { resyncTimeoutMs: 10_000, minResyncMs: 1000 } });
    h.src.loss({ source: 'conntrack', enobufs: 1 });
    expect(h.src.resyncs).toBe(1);
    h.src.dumpBegin(); // ... and the dump fails: no dumpEnd
    await h.step(9000);
    expect(h.src.resyncs).toBe(1);
    await h.step(1000);
    expect(h.src.resyncs).toBe(2);
    h.src.dump([]);
    await h.step(1000);
    expect(h.of('event_loss').at(-1)).toMatchObject({ state: 'resolved' });
  });

  it('sustained overload is one episode: fires once, re-sent as it grows, resolved once with the total', async () => {
    const h = await harness({ thresholds: { minResyncMs: 500, lossQuietSeconds: 10 } });
    // 20 s of overload: loss every second, each resync dump ends clean between two bursts.
    let total = 0;
    for (let i = 0; i < 20; i++) {
      h.src.loss({ source: 'conntrack', enobufs: 1, kernelDrops: 100 + i });
      total += 100 + i;
      await h.step(500);
      h.src.dump([]);
      await h.step(500);
    }
    const states = h.of('event_loss').map((a) => a.state);
    expect(states.filter((x) => x === 'resolved')).toEqual([]);
    // Re-sent as the count grew, at most once per resendMs (5 s) after the first.
    expect(states.length).toBeGreaterThanOrEqual(2);
    expect(states.length).toBeLessThanOrEqual(1 + 20 / 5);
    await h.step(8000); // 9 s after the last loss
    expect(h.of('event_loss').map((a) => a.state)).not.toContain('resolved');
    await h.step(1000);
    const all = h.of('event_loss');
    expect(all.filter((a) => a.state === 'resolved')).toHaveLength(1);
    const end = all.at(-1)!;
    expect(end).toMatchObject({ state: 'resolved', drops: total, detail: { conntrack: { kernelDrops: total, lost: total } } });
    expect(end.message).toMatch(new RegExp(`^Event loss is over \\(none for 10 s\\): ${total} events were lost in this episode; conntrack state was rebuilt`));
    // The next overload is a new episode.
    h.src.loss({ source: 'conntrack', kernelDrops: 5 });
    expect(h.of('event_loss').at(-1)).toMatchObject({ state: 'firing', drops: 5 });
  });

  it('a resync that has not ended keeps the episode open past the quiet period', async () => {
    const h = await harness({ thresholds: { lossQuietSeconds: 2, resyncTimeoutMs: 60_000 } });
    h.src.loss({ source: 'conntrack', kernelDrops: 3 });
    h.src.dumpBegin();
    await h.step(5000);
    expect(h.of('event_loss').map((a) => a.state)).toEqual(['firing']);
    h.src.dumpEnd();
    expect(h.of('event_loss').map((a) => a.state)).toEqual(['firing', 'resolved']);
  });

  it('NFLOG loss resolves after the quiet period without a resync', async () => {
    const h = await harness({ thresholds: { lossQuietSeconds: 5 } });
    h.src.loss({ source: 'nflog', seqGap: 9 });
    expect(h.src.resyncs).toBe(0);
    expect(h.alerts[0]).toMatchObject({ kind: 'event_loss', drops: 9, detail: { nflog: { seqGap: 9 } } });
    await h.step(4000);
    expect(h.alerts).toHaveLength(1);
    await h.step(1000);
    expect(h.alerts[1]).toMatchObject({ kind: 'event_loss', state: 'resolved' });
  });
});
