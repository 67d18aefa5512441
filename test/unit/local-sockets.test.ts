// Tracker.setLocalSockets: a local key counts max(conntrack flows, sockets), snapshot by snapshot.
import { describe, expect, it } from 'vitest';
import { SyntheticSource, plainFlow } from '../../src/source/synthetic.js';
import { CtKind } from '../../src/source/types.js';
import { Tracker } from '../../src/track/tracker.js';

const KEY = 'tcp|192.0.2.5|198.51.100.8|80|L';

describe('Tracker.setLocalSockets', () => {
  it('sockets alone make the key; a new snapshot replaces the old; zero releases it', () => {
    const t = new Tracker();
    t.setLocalSockets(new Map([[KEY, 10]]), 100);
    const k = t.keys.find(KEY);
    expect(t.keys.used(k)).toBe(10);
    expect(t.keys.isLocal(k)).toBe(true);
    t.setLocalSockets(new Map([[KEY, 4]]), 101);
    expect(t.keys.used(k)).toBe(4);
    t.setLocalSockets(new Map(), 102);
    expect(t.keys.used(k)).toBe(0);
  });

  it('never adds sockets on top of flows conntrack already counts', () => {
    const t = new Tracker({ localAddrs: ['192.0.2.5'] });
    const src = new SyntheticSource();
    void src.start({ conntrack: (v) => t.onConntrack(v, 100), nflog: () => {}, loss: () => {}, error: () => {}, dumpBegin: () => {}, dumpEnd: () => {} });
    const flow = (kind: CtKind, p: number) => plainFlow(kind, p, { src: '192.0.2.5', sport: 40000 + p, dst: '198.51.100.8', dport: 80 });
    src.conntrack([0, 1, 2, 3, 4, 5].map((p) => flow(CtKind.New, p))); // conntrack's own 6 flows
    const k = t.keys.find(KEY);
    expect(t.keys.used(k)).toBe(6);
    t.setLocalSockets(new Map([[KEY, 6]]), 100);
    expect(t.keys.used(k)).toBe(6);
    t.setLocalSockets(new Map([[KEY, 9]]), 101);
    expect(t.keys.used(k)).toBe(9);
    src.conntrack([flow(CtKind.Destroy, 0)]); // conntrack saw one close between snapshots
    t.setLocalSockets(new Map([[KEY, 8]]), 102);
    expect(t.keys.used(k)).toBe(8);
  });
});
