// The lab's verdict (src/lab/judge.ts) from observed alerts alone: which alert satisfies a
// scenario, and why a run passes or fails.
import { describe, expect, it } from 'vitest';
import { firingMatches, judgeFired, judgeNotFired, natwatchDrops, resolvedMatches } from '../../src/lab/judge.js';
import type { Expectation } from '../../src/lab/scenarios/types.js';
import type { Alert } from '../../src/types.js';

const key = { proto: 'tcp', natIp: '198.51.100.1', dstIp: '198.51.100.8', dstPort: 80 } as const;
const expectPorts: Expectation = { kind: 'nat_port_exhaustion', key, severity: 'critical', used: 10, capacity: 10, drops: true, resolves: 'after-release', flowsExpire: true };
const expectLoss: Expectation = { kind: 'event_loss', key: {}, severity: 'warning', drops: true, resolves: 'by-itself', flowsExpire: false, oneEpisode: true };

function alert(over: Partial<Alert>): Alert {
  return {
    type: 'alert', seq: 1, ts: '2026-01-01T00:00:00.000Z', kind: 'nat_port_exhaustion', severity: 'critical', state: 'firing', netns: null,
    key, used: 10, capacity: 10, utilization: 1, drops: 5, message: 'm', ...over,
  };
}

describe('lab judge', () => {
  it('a firing alert matches only with the expected kind, key, severity, used/capacity and drops', () => {
    expect(firingMatches(expectPorts, alert({}))).toBe(true);
    expect(firingMatches(expectPorts, alert({ used: 9 }))).toBe(false);
    expect(firingMatches(expectPorts, alert({ capacity: 64512 }))).toBe(false);
    expect(firingMatches(expectPorts, alert({ drops: 0 }))).toBe(false);
    expect(firingMatches(expectPorts, alert({ severity: 'warning' }))).toBe(false);
    expect(firingMatches(expectPorts, alert({ key: { ...key, dstPort: 81 } }))).toBe(false);
    expect(firingMatches(expectPorts, alert({ state: 'resolved' }))).toBe(false);
    expect(resolvedMatches(expectPorts, alert({ state: 'resolved', used: 0 }))).toBe(true);
  });

  it('no matching alert: the reason lists what was seen', () => {
    const v = judgeNotFired(expectPorts, [alert({ used: 9 })], 15_000);
    expect(v.ok).toBe(false);
    expect(v.reason).toMatch(/^no nat_port_exhaustion alert matching .* within 15000 ms \(seen: nat_port_exhaustion .* used=9 capacity=10/);
  });

  it('fired and resolved: ok, with the recovery time; fired without resolve: not ok', () => {
    const firing = alert({});
    const resolved = alert({ seq: 2, state: 'resolved', ts: '2026-01-01T00:00:02.500Z' });
    const counted = natwatchDrops(expectPorts, [firing, resolved], resolved);
    const base = { e: expectPorts, firing, since: Date.parse(firing.ts), occ: null, counted, kernel: null, waitMs: 15_000 };
    expect(judgeFired({ ...base, resolved })).toEqual({ ok: true, reason: expect.stringMatching(/resolved 2\.5 s after the client closed$/) });
    expect(judgeFired({ ...base, resolved: null }).reason).toMatch(/fired but no resolved followed within 15000 ms/);
    expect(judgeFired({ ...base, resolved, occ: { ok: false, line: 'natwatch counts 9' } }).reason).toBe('occupancy mismatch: natwatch counts 9');
  });

  it('one overload must be one episode whose drops, less natwatch\'s own queue drops, equal the kernel\'s', () => {
    const loss = (seq: number, state: 'firing' | 'resolved', drops: number, dropped = 0) =>
      alert({ seq, kind: 'event_loss', key: {}, severity: 'warning', state, used: null, capacity: null, drops, detail: { conntrack: { dropped } } });
    const one = [loss(1, 'firing', 0), loss(2, 'resolved', 120, 20)];
    const counted = natwatchDrops(expectLoss, one, one[1]!);
    expect(counted).toEqual({ drops: 120, episodes: 1, inQueue: 20 });
    const base = { e: expectLoss, firing: one[0]!, resolved: one[1]!, since: 0, occ: null, waitMs: 15_000 };
    expect(judgeFired({ ...base, counted, kernel: { what: 'Drops', n: 100 } }).ok).toBe(true);
    expect(judgeFired({ ...base, counted, kernel: { what: 'Drops', n: 101 } }).reason).toBe('natwatch counted 100 (+20 in its queue), the kernel 101');
    const two = [...one, loss(3, 'firing', 0), loss(4, 'resolved', 5)];
    expect(judgeFired({ ...base, counted: natwatchDrops(expectLoss, two, two[3]!), kernel: null }).reason).toBe('2 event_loss episodes for one overload, expected exactly one');
  });
});
