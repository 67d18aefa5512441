// Tracker.setLocalSockets: a local key counts max(conntrack flows, sockets), snapshot by snapshot.
import { describe, expect, it } from 'vitest';
import { Tracker } from '../../src/track/tracker.js';

const KEY = 'tcp|192.0.2.5|198.51.100.8|80|L';

describe('Tracker.setLocalSockets', () => {
  it('sockets alone make the key; a new snapshot replaces the old; zero releases it', () => {
    const t = new Tracker();
    t.setLocalSockets(new Map([[KEY, 10]]), 100);
    const k = t.occ.idOf(KEY);
    expect(t.occ.used[k]).toBe(10);
    expect(t.occ.local[k]).toBe(1);
    t.setLocalSockets(new Map([[KEY, 4]]), 101);
    expect(t.occ.used[k]).toBe(4);
    t.setLocalSockets(new Map(), 102);
    expect(t.occ.used[k] ?? 0).toBe(0);
  });

  it('never adds sockets on top of flows conntrack already counts', () => {
    const t = new Tracker();
    const k = t.occ.intern(KEY);
    for (let p = 0; p < 6; p++) t.occ.add(k, 40000 + p); // conntrack's own 6 flows
    t.setLocalSockets(new Map([[KEY, 6]]), 100);
    expect(t.occ.used[k]).toBe(6);
    t.setLocalSockets(new Map([[KEY, 9]]), 101);
    expect(t.occ.used[k]).toBe(9);
    t.occ.remove(k, 40000); // conntrack saw one close between snapshots
    t.setLocalSockets(new Map([[KEY, 8]]), 102);
    expect(t.occ.used[k]).toBe(8);
  });
});
