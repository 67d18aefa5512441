// The tracker-side aggregates behind /metrics: busiest destination per (proto, NAT address),
// and NFLOG packets per (group, trimmed prefix) with its bound.
import { describe, expect, it } from 'vitest';
import { CtKind } from '../../src/source/types.js';
import { SyntheticSource, snatFlow, type SynthCt } from '../../src/source/synthetic.js';
import { CapacityResolver } from '../../src/track/capacity.js';
import { natAddresses } from '../../src/track/nat-addresses.js';
import { NflogCounts, NFLOG_OVERFLOW_PREFIX } from '../../src/track/nflog-counts.js';
import { Tracker } from '../../src/track/tracker.js';

function feed(tracker: Tracker, recs: SynthCt[]): void {
  const src = new SyntheticSource({ now: () => 1_000_000 });
  void src.start({ conntrack: (v) => tracker.onConntrack(v, 1000), nflog: () => {}, loss: () => {}, error: () => {}, dumpBegin: () => {}, dumpEnd: () => {} });
  src.conntrack(recs);
}

describe('natAddresses', () => {
  it('per (proto, NAT ip): the highest utilization over its destinations, and how many are busy', () => {
    const tracker = new Tracker({ capacity: new CapacityResolver({ natPorts: [50000, 50009] }) });
    const recs: SynthCt[] = [];
    let id = 1;
    const flows = (natIp: string, dst: string, dport: number, n: number, proto = 6) => {
      for (let i = 0; i < n; i++) recs.push(snatFlow(CtKind.New, id++, { src: '192.0.2.5', sport: 1000 + id, dst, dport, natIp, natPort: 50000 + i, proto }));
    };
    flows('198.51.100.1', '198.51.100.8', 80, 9); // 0.9
    flows('198.51.100.1', '198.51.100.9', 443, 2); // 0.2
    flows('198.51.100.2', '198.51.100.8', 80, 3); // 0.3
    flows('198.51.100.1', '198.51.100.8', 53, 5, 17); // udp 0.5
    feed(tracker, recs);
    const by = Object.fromEntries(natAddresses(tracker).map((a) => [`${a.proto} ${a.natIp}`, a]));
    expect(by).toEqual({
      'tcp 198.51.100.1': { proto: 'tcp', natIp: '198.51.100.1', maxUtilization: 0.9, destinations: 2 },
      'tcp 198.51.100.2': { proto: 'tcp', natIp: '198.51.100.2', maxUtilization: 0.3, destinations: 1 },
      'udp 198.51.100.1': { proto: 'udp', natIp: '198.51.100.1', maxUtilization: 0.5, destinations: 1 },
    });
  });
});

describe('NflogCounts', () => {
  it('counts per (group, trimmed prefix); past the bound, into one overflow pair', () => {
    const counts = new NflogCounts(2);
    const src = new SyntheticSource({ now: () => 1_000_000 });
    void src.start({ conntrack: () => {}, nflog: (v) => counts.onBatch(v), loss: () => {}, error: () => {}, dumpBegin: () => {}, dumpEnd: () => {} });
    const pkt = (group: number, prefix: string) => ({ group, prefix, src: '192.0.2.5', dst: '198.51.100.8', dport: 9999 });
    src.nflog([pkt(5, 'blocked-9999 '), pkt(5, 'blocked-9999'), pkt(6, 'x '), pkt(7, 'y'), pkt(7, 'z')]);
    expect(counts.list()).toEqual([
      { group: 5, prefix: 'blocked-9999', packets: 2 },
      { group: 6, prefix: 'x', packets: 1 },
      { group: -1, prefix: NFLOG_OVERFLOW_PREFIX, packets: 2 },
    ]);
  });
});
