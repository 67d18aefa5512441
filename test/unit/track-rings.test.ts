import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { C_DESTROY, C_DROP, C_NEW, KeyRings } from '../../src/track/rings.js';
import { CapacityResolver } from '../../src/track/capacity.js';
import { Tracker } from '../../src/track/tracker.js';
import { SyntheticSource, snatFlow } from '../../src/source/synthetic.js';
import { CtKind } from '../../src/source/types.js';

describe('KeyRings', () => {
  it('sums per-second counters over a window and forgets seconds older than the ring', () => {
    const r = new KeyRings(4, 300);
    r.add(1, C_NEW, 1000, 5, true);
    r.add(1, C_NEW, 1001, 7, true);
    r.add(1, C_DESTROY, 1001, 2, true);
    expect(r.sum(1, C_NEW, 1001, 1)).toBe(7);
    expect(r.sum(1, C_NEW, 1001, 2)).toBe(12);
    expect(r.sum(1, C_NEW, 1005, 5)).toBe(7); // 1001..1005
    expect(r.sum(1, C_DESTROY, 1001, 300)).toBe(2);
    // 300 s later the slot is reused: the old second is gone.
    r.add(1, C_NEW, 1300, 1, true);
    expect(r.sum(1, C_NEW, 1300, 300)).toBe(8); // 1001 still within (1000, 1300]
    r.add(1, C_NEW, 1301, 1, true);
    expect(r.sum(1, C_NEW, 1301, 300)).toBe(2);
    expect(r.sum(1, C_DROP, 1301, 300)).toBe(0);
  });

  it('a long gap clears the whole ring', () => {
    const r = new KeyRings(1, 10);
    for (let t = 0; t < 10; t++) r.add(0, C_NEW, t, 1, true);
    expect(r.sum(0, C_NEW, 9, 10)).toBe(10);
    r.add(0, C_NEW, 100, 1, true);
    expect(r.sum(0, C_NEW, 100, 10)).toBe(1);
  });

  it('slope follows a steady climb', () => {
    const r = new KeyRings(1, 300);
    // 3 new and 1 destroyed per second for 30 s: used grows by 2/s.
    for (let t = 1; t <= 30; t++) {
      r.add(0, C_NEW, t, 3, true);
      r.add(0, C_DESTROY, t, 1, true);
    }
    expect(r.slope(0, 30, 20, 60)).toBeCloseTo(2, 6);
    expect(r.slope(0, 30, 1, 60)).toBe(0);
  });

  it('evicts idle keys before active ones, least recent first, and counts evictions', () => {
    const r = new KeyRings(3, 10);
    const evicted: number[] = [];
    r.onEvict = (k) => evicted.push(k);
    r.add(10, C_NEW, 1, 1, true);
    r.add(11, C_NEW, 1, 1, false);
    r.add(12, C_NEW, 1, 1, false);
    r.add(11, C_NEW, 2, 1, false); // 11 more recent than 12
    r.add(13, C_NEW, 2, 1, true); // full: evict idle LRU = 12
    expect(evicted).toEqual([12]);
    r.add(14, C_NEW, 3, 1, true); // evict idle 11
    r.add(15, C_NEW, 3, 1, true); // no idle left: active LRU = 10
    expect(evicted).toEqual([12, 11, 10]);
    expect(r.evicted).toBe(3);
    expect(r.has(10)).toBe(false);
    expect(r.sum(10, C_NEW, 3, 10)).toBe(0);
  });

  it('never holds more than maxKeys rings, whatever the key sequence', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 500 }), fc.boolean()), { maxLength: 3000 }), fc.integer({ min: 1, max: 20 }), (ops, max) => {
        const r = new KeyRings(max, 5);
        const held = new Set<number>();
        r.onEvict = (k) => held.delete(k);
        for (const [k, active] of ops) {
          r.add(k, C_NEW, 1, 1, active);
          held.add(k);
          expect(r.size).toBeLessThanOrEqual(max);
          expect(held.size).toBe(r.size);
        }
      }),
      { numRuns: 100 },
    );
  });
});

describe('Tracker with bounded rings', () => {
  it('a scan across many destinations keeps keys bounded by live flows + ring slots', () => {
    const tracker = new Tracker({ ringKeys: 16 });
    const src = new SyntheticSource();
    void src.start({
      conntrack: (v) => tracker.onConntrack(v, 5), nflog: () => {}, loss: () => {}, error: () => {},
      dumpBegin: () => {}, dumpEnd: () => {},
    });
    // 5000 short flows to 5000 destinations (each opened and closed), 3 long ones to one dst.
    const long = [1, 2, 3].map((i) => snatFlow(CtKind.New, 1_000_000 + i, { src: '192.0.2.5', sport: i, dst: '198.51.100.200', dport: 443, natIp: '203.0.113.1', natPort: 1000 + i }));
    src.conntrack(long);
    for (let i = 0; i < 5000; i++) {
      const f = { src: '192.0.2.5', sport: 2000, dst: `198.51.${100 + (i >> 8)}.${i & 255}`, dport: 80, natIp: '203.0.113.1', natPort: 3000 };
      src.conntrack([snatFlow(CtKind.New, i + 1, f), snatFlow(CtKind.Destroy, i + 1, f)]);
    }
    expect(tracker.keys.ringUse.size).toBeLessThanOrEqual(16);
    expect(tracker.keys.count).toBeLessThanOrEqual(16 + 1);
    expect(tracker.keys.ringUse.evicted).toBeGreaterThan(4900);
    const k = tracker.keys.find('tcp|203.0.113.1|198.51.100.200|443|N');
    expect(tracker.keys.used(k)).toBe(3); // the active key survived the scan
  });
});

describe('CapacityResolver', () => {
  const snat = (addrs: Array<[string, string]> | null, ports: [number, number] | null, extra: object = {}) => ({
    kind: 'snat' as const, family: 'ip', protos: null, oifname: null, addrs: addrs?.map(([lo, hi]) => ({ lo, hi })) ?? null, ports, origin: 'nft' as const, ...extra,
  });
  const masq = (ports: [number, number] | null, extra: object = {}) => ({
    kind: 'masquerade' as const, family: 'ip', protos: null, oifname: null, addrs: null, ports, origin: 'nft' as const, ...extra,
  });

  it('defaults to the kernel range 1024-65535', () => {
    expect(new CapacityResolver().nat('tcp', '198.51.100.1', '198.51.100.8', 80)).toMatchObject({ capacity: 64512, addrs: 1, source: 'default' });
  });

  it('an unreadable ruleset makes an unexplained key unknown, with the reason; a readable matching rule still counts', () => {
    const c = new CapacityResolver();
    c.setRuleset({ nat: [snat([['203.0.113.1', '203.0.113.1']], [40000, 40019])], unreadable: ['iptables-legacy tables not checked: need CAP_DAC_READ_SEARCH'] });
    expect(c.nat('tcp', '198.51.100.1', '198.51.100.8', 80)).toEqual({ capacity: 64512, addrs: 1, source: 'unknown', reason: 'iptables-legacy tables not checked: need CAP_DAC_READ_SEARCH' });
    expect(c.nat('tcp', '203.0.113.1', '198.51.100.8', 80)).toMatchObject({ capacity: 20, source: 'ruleset' });
    expect(c.info(false, 'tcp', '203.0.113.1', '198.51.100.8', 80).source).toBe('ruleset');
    c.setRuleset({ nat: [], unreadable: [] });
    expect(c.info(false, 'tcp', '203.0.113.1', '198.51.100.8', 80).source).toBe('default');
  });

  it('--nat-ports overrides the ruleset; per-rule config overrides both', () => {
    const c = new CapacityResolver({ natPorts: [50000, 50009], natRules: [{ dstPort: 443, ports: [1, 100] }] });
    c.setDetected([masq([1, 2])]);
    expect(c.nat('tcp', '198.51.100.1', '198.51.100.8', 80)).toMatchObject({ capacity: 10, source: 'flag' });
    expect(c.nat('tcp', '198.51.100.1', '198.51.100.8', 443)).toMatchObject({ capacity: 100, addrs: 1, source: 'config' });
  });

  it('matches snat by address range, masquerade by interface, protocol and family', () => {
    const c = new CapacityResolver();
    c.setDetected([
      snat([['203.0.113.1', '203.0.113.3']], [40000, 40099], { protos: ['tcp'] }),
      masq([50000, 50009], { oifname: 'r-out' }),
      masq(null, { oifname: 'eth*' }),
    ]);
    c.setInterfaces(new Map([['r-out', ['198.51.100.1']], ['eth0', ['192.0.2.99']]]));
    expect(c.nat('tcp', '203.0.113.2', '198.51.100.8', 80)).toMatchObject({ capacity: 100, addrs: 3, source: 'ruleset', reason: null });
    expect(c.nat('udp', '203.0.113.2', '198.51.100.8', 80).source).toBe('default');
    expect(c.nat('tcp', '198.51.100.1', '198.51.100.8', 80).capacity).toBe(10);
    expect(c.nat('tcp', '192.0.2.99', '198.51.100.8', 80)).toMatchObject({ capacity: 64512, addrs: 1, source: 'ruleset' });
    expect(c.nat('tcp', '2001:db8::1', '2001:db8::8', 80).source).toBe('default');
  });

  it('local capacity is ip_local_port_range minus reserved ports, and bumps the version', () => {
    const c = new CapacityResolver();
    expect(c.local()).toMatchObject({ capacity: 28232, source: 'default' });
    c.setLocalLimits([32768, 60999], []);
    expect(c.local()).toMatchObject({ capacity: 28232, source: 'sysctl' });
    const v = c.version;
    c.setLocalLimits([32768, 60999], [[40000, 40009], [1, 100], [60990, 61010]]);
    expect(c.local().capacity).toBe(28232 - 10 - 10);
    expect(c.version).toBe(v + 1);
    c.setLocalLimits([32768, 60999], [[40000, 40009], [1, 100], [60990, 61010]]);
    expect(c.version).toBe(v + 1);
  });
});
