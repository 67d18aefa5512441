import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CtKind } from '../../src/source/types.js';
import { SyntheticSource, plainFlow, snatFlow, type SynthCt } from '../../src/source/synthetic.js';
import { Tracker } from '../../src/track/tracker.js';
import { Occupancy } from '../../src/track/occupancy.js';

const LOCAL = '192.0.2.1';

/** A flow spec the reference kernel holds; `rec(kind)` renders it as a conntrack record. */
interface Spec { id: number; variant: number; port: number }

function rec(kind: CtKind, s: Spec): SynthCt {
  const dst = s.variant & 1 ? '198.51.100.9' : '198.51.100.8';
  const dport = s.variant & 2 ? 443 : 80;
  switch ((s.variant >> 2) % 3) {
    case 0: return snatFlow(kind, s.id, { src: '192.0.2.5', sport: 40000 + s.id, dst, dport, natIp: s.variant & 16 ? '203.0.113.2' : '203.0.113.1', natPort: s.port });
    case 1: return plainFlow(kind, s.id, { src: LOCAL, sport: 1024 + s.id, dst, dport });
    default: return plainFlow(kind, s.id, { src: '192.0.2.50', sport: 1024 + s.id, dst, dport });
  }
}

function keyOf(s: Spec): string | null {
  const r = rec(CtKind.New, s);
  const v = (s.variant >> 2) % 3;
  if (v === 2) return null;
  return v === 0
    ? Occupancy.keyString(6, r.reply.dst, r.orig.dst, r.orig.dport, false)
    : Occupancy.keyString(6, r.orig.src, r.orig.dst, r.orig.dport, true);
}

function setup() {
  const src = new SyntheticSource({ now: () => 1_000_000 });
  const tracker = new Tracker({ localAddrs: [LOCAL], ringKeys: 8 });
  void src.start({
    conntrack: (v) => tracker.onConntrack(v, 1000),
    nflog: () => {}, loss: () => {}, error: () => {},
    dumpBegin: () => tracker.dumpBegin(), dumpEnd: () => tracker.dumpEnd(),
  });
  return { src, tracker };
}

/** Per-key counts in the tracker vs. the reference kernel; also asserts nothing is negative. */
function expectSame(tracker: Tracker, kernel: Map<number, Spec>): void {
  const want = new Map<string, number>();
  for (const s of kernel.values()) {
    const k = keyOf(s);
    if (k) want.set(k, (want.get(k) ?? 0) + 1);
  }
  const got = new Map<string, number>();
  for (const [k, { used }] of tracker.keys.snapshot()) {
    expect(used).toBeGreaterThanOrEqual(0);
    if (used > 0) got.set(k, used);
  }
  expect(got).toEqual(want);
  expect(tracker.liveFlows).toBe(kernel.size);
  // The source ports each key holds match too (the NAT port for SNAT keys, sport for local).
  const ports = new Map<string, Set<number>>();
  for (const s of kernel.values()) {
    const k = keyOf(s);
    if (!k) continue;
    const r = rec(CtKind.New, s);
    const p = k.endsWith('|L') ? r.orig.sport : r.reply.dport;
    if (!ports.has(k)) ports.set(k, new Set());
    ports.get(k)!.add(p);
  }
  for (const [k, set] of ports) {
    const id = tracker.keys.find(k);
    expect(tracker.keys.distinctPorts(id)).toBe(set.size);
    for (const p of set) expect(tracker.keys.holds(id, p)).toBe(true);
  }
}

type Op =
  | { t: 'new'; id: number; variant: number; port: number }
  | { t: 'destroy'; pick: number }
  | { t: 'update'; pick: number }
  | { t: 'dup' }
  | { t: 'dumpStep'; n: number }
  | { t: 'dumpStart' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ t: fc.constant('new' as const), id: fc.integer({ min: 1, max: 60 }), variant: fc.integer({ min: 0, max: 31 }), port: fc.integer({ min: 1024, max: 1100 }) }) },
  { weight: 4, arbitrary: fc.record({ t: fc.constant('destroy' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ t: fc.constant('update' as const), pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('dup' as const) }) },
  { weight: 3, arbitrary: fc.record({ t: fc.constant('dumpStep' as const), n: fc.integer({ min: 1, max: 5 }) }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant('dumpStart' as const) }) },
);

/**
 * Runs ops against a reference kernel (a plain Map) and the tracker. `lose(i)` says whether
 * the event of op i is lost. Dump records are the kernel's table as read at dumpStart plus
 * flows created during the dump (as a kernel dump may include them); they arrive interleaved
 * with live events and may be stale by the time they arrive.
 */
function run(ops: Op[], lose: (i: number) => boolean, checkEachStep: boolean) {
  const { src, tracker } = setup();
  const kernel = new Map<number, Spec>();
  let pending: Spec[] | null = null;
  let last: SynthCt | null = null;
  const deliver = (i: number, r: SynthCt) => {
    if (lose(i)) return;
    last = r;
    src.conntrack([r]);
  };
  ops.forEach((op, i) => {
    const live = [...kernel.values()];
    switch (op.t) {
      case 'new': {
        if (kernel.has(op.id)) break;
        // The kernel's id hashes the original tuple: an id that comes back is the same flow
        // tuple (only its NAT port may differ, which the tracker checks on dump records).
        const s = { id: op.id, variant: (op.id * 7) % 32, port: op.port };
        kernel.set(op.id, s);
        if (pending && op.port % 2 === 0) pending.push(s);
        deliver(i, rec(CtKind.New, s));
        break;
      }
      case 'destroy':
      case 'update': {
        if (live.length === 0) break;
        const s = live[op.pick % live.length]!;
        if (op.t === 'destroy') kernel.delete(s.id);
        deliver(i, rec(op.t === 'destroy' ? CtKind.Destroy : CtKind.Update, s));
        break;
      }
      case 'dup':
        if (last) src.conntrack([last]);
        break;
      case 'dumpStart':
        if (pending) break;
        pending = [...kernel.values()];
        last = null; // a duplicate is a re-delivery of a recent event, not of one from before the dump
        src.dumpBegin();
        break;
      case 'dumpStep': {
        if (!pending) break;
        const batch = pending.splice(0, op.n);
        src.conntrack(batch.map((s) => rec(CtKind.Dump, s)));
        if (pending.length === 0) {
          pending = null;
          src.dumpEnd();
        }
        break;
      }
    }
    if (checkEachStep) expectSame(tracker, kernel);
  });
  const rest = pending as Spec[] | null; // assigned inside the forEach callback
  if (rest) {
    src.conntrack(rest.map((s) => rec(CtKind.Dump, s)));
    src.dumpEnd();
  }
  return { src, tracker, kernel };
}

describe('Tracker occupancy vs. a reference kernel', () => {
  it('equals the kernel after every step when no event is lost (dups and dump overlap included)', () => {
    fc.assert(
      fc.property(fc.array(opArb, { maxLength: 200 }), (ops) => {
        const { tracker, kernel } = run(ops, () => false, true);
        expectSame(tracker, kernel);
      }),
      { numRuns: 300 },
    );
  });

  it('a full resync after lost events rebuilds exactly the kernel state', () => {
    fc.assert(
      fc.property(
        fc.array(opArb.filter((o) => o.t !== 'dumpStart' && o.t !== 'dumpStep'), { maxLength: 150 }),
        fc.array(opArb, { maxLength: 100 }),
        fc.func(fc.boolean()),
        (before, during, loseFn) => {
          // Lossy phase, then a resync during which events keep flowing (no loss, dups allowed).
          const ops: Op[] = [...before, { t: 'dumpStart' }, ...during.filter((o) => o.t !== 'dumpStart')];
          const { tracker, kernel } = run(ops, (i) => i < before.length && loseFn(i), false);
          expectSame(tracker, kernel);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('Tracker classification', () => {
  it('keys SNAT flows by NAT address and destination, local flows by source, ignores forwarded ones', () => {
    const { src, tracker } = setup();
    src.conntrack([
      snatFlow(CtKind.New, 1, { src: '192.0.2.5', sport: 1111, dst: '198.51.100.8', dport: 80, natIp: '198.51.100.1', natPort: 50000 }),
      snatFlow(CtKind.New, 2, { src: '192.0.2.6', sport: 1111, dst: '198.51.100.8', dport: 80, natIp: '198.51.100.1', natPort: 50001 }),
      plainFlow(CtKind.New, 3, { src: LOCAL, sport: 33000, dst: '198.51.100.8', dport: 80 }),
      plainFlow(CtKind.New, 4, { src: '192.0.2.77', sport: 33000, dst: '198.51.100.8', dport: 80 }),
      plainFlow(CtKind.New, 5, { src: LOCAL, sport: 33001, dst: '198.51.100.8', dport: 53, proto: 1 }),
    ]);
    const nat = tracker.keys.find('tcp|198.51.100.1|198.51.100.8|80|N');
    const loc = tracker.keys.find('tcp|192.0.2.1|198.51.100.8|80|L');
    expect(tracker.keys.used(nat)).toBe(2);
    expect(tracker.keys.distinctPorts(nat)).toBe(2);
    expect(tracker.keys.holds(nat, 50001)).toBe(true);
    expect(tracker.keys.used(loc)).toBe(1);
    expect(tracker.keys.holds(loc, 33000)).toBe(true);
    expect(tracker.keys.count).toBe(2);
    expect(tracker.liveFlows).toBe(5);
    src.conntrack([snatFlow(CtKind.Destroy, 2, { src: '192.0.2.6', sport: 1111, dst: '198.51.100.8', dport: 80, natIp: '198.51.100.1', natPort: 50001 })]);
    expect(tracker.keys.used(nat)).toBe(1);
    expect(tracker.keys.holds(nat, 50001)).toBe(false);
  });

  it('treats reply dst != orig src as SNAT even without the status bit', () => {
    const { src, tracker } = setup();
    const r = snatFlow(CtKind.New, 9, { src: '192.0.2.5', sport: 1, dst: '198.51.100.8', dport: 80, natIp: '198.51.100.1', natPort: 7 });
    src.conntrack([{ ...r, status: 0 }]);
    expect(tracker.keys.used(tracker.keys.find('tcp|198.51.100.1|198.51.100.8|80|N'))).toBe(1);
  });

  it('a dump record for a flow destroyed during the dump is ignored (tombstone)', () => {
    const { src, tracker } = setup();
    const f = snatFlow(CtKind.Dump, 5, { src: '192.0.2.5', sport: 1, dst: '198.51.100.8', dport: 80, natIp: '198.51.100.1', natPort: 7 });
    src.dumpBegin();
    src.conntrack([{ ...f, kind: CtKind.Destroy }]);
    src.conntrack([f]);
    expect(tracker.liveFlows).toBe(0);
    expect(tracker.totals.staleDumpRecords).toBe(1);
    src.dumpEnd();
    expect(tracker.flows.occupied).toBe(0);
  });

  it('a dump record for a known id with another NAT port re-keys it (DESTROY and NEW both lost)', () => {
    const { src, tracker } = setup();
    const f = { src: '192.0.2.5', sport: 1, dst: '198.51.100.8', dport: 80, natIp: '198.51.100.1', natPort: 7 };
    src.conntrack([snatFlow(CtKind.New, 5, f)]);
    src.dump([snatFlow(CtKind.Dump, 5, { ...f, natPort: 9 })]);
    const k = tracker.keys.find('tcp|198.51.100.1|198.51.100.8|80|N');
    expect(tracker.keys.used(k)).toBe(1);
    expect(tracker.keys.holds(k, 7)).toBe(false);
    expect(tracker.keys.holds(k, 9)).toBe(true);
  });

  it('dumpEnd removes flows whose DESTROY was lost, keeps flows created during the dump', () => {
    const { src, tracker } = setup();
    const a = snatFlow(CtKind.New, 1, { src: '192.0.2.5', sport: 1, dst: '198.51.100.8', dport: 80, natIp: '198.51.100.1', natPort: 7 });
    const b = snatFlow(CtKind.New, 2, { src: '192.0.2.5', sport: 2, dst: '198.51.100.8', dport: 80, natIp: '198.51.100.1', natPort: 8 });
    const c = snatFlow(CtKind.New, 3, { src: '192.0.2.5', sport: 3, dst: '198.51.100.8', dport: 80, natIp: '198.51.100.1', natPort: 9 });
    src.conntrack([a, b]);
    src.dumpBegin();
    src.conntrack([c]); // created after the dump read the table
    src.conntrack([{ ...a, kind: CtKind.Dump }]); // b is gone from the kernel
    expect(tracker.dumpEnd()).toBe(1);
    const k = tracker.keys.find('tcp|198.51.100.1|198.51.100.8|80|N');
    expect(tracker.keys.used(k)).toBe(2);
    expect(tracker.keys.holds(k, 8)).toBe(false);
    expect(tracker.totals.resyncRemoved).toBe(1);
  });
});
