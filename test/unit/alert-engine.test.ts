// Properties of what the engine sends, over random occupancy and drop sequences for one key.
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FakeClock } from '../../src/alert/clock.js';
import { Streamer } from '../../src/streamer.js';
import { SyntheticSource, snatFlow, type SynthCt } from '../../src/source/synthetic.js';
import { CtKind } from '../../src/source/types.js';
import type { Alert } from '../../src/types.js';

const RANK = { warning: 1, critical: 2 } as const;

describe('alert engine properties (nat_port_exhaustion, capacity 10)', () => {
  it('seq increases, episodes alternate firing/resolved, no tick spam, severity never drops while firing', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ used: fc.integer({ min: 0, max: 10 }), drops: fc.integer({ min: 0, max: 3 }), dt: fc.integer({ min: 200, max: 3000 }) }), { minLength: 1, maxLength: 40 }),
        async (steps) => {
          const clock = new FakeClock();
          const src = new SyntheticSource({ now: () => clock.now() });
          const s = new Streamer({ source: src, clock, localAddrs: [], natPorts: [50000, 50009], thresholds: { refreshDumpMs: 0 } });
          const sent: Alert[] = [];
          s.on('alert', (a) => a.kind === 'nat_port_exhaustion' && sent.push(a));
          await s.start();
          const live = new Map<number, SynthCt>();
          let nextId = 1;
          const usedAt: number[] = []; // used at each tick, indexed by tick number
          const tickOf = new Map<number, number>(); // alert seq → tick number
          let tick = 0;
          for (const st of steps) {
            while (live.size < st.used) {
              const id = nextId++;
              const r = snatFlow(CtKind.New, id, { src: '192.0.2.5', sport: id, dst: '198.51.100.8', dport: 80, natIp: '198.51.100.1', natPort: 50000 + (id % 10) });
              live.set(id, r);
              src.conntrack([r]);
            }
            while (live.size > st.used) {
              const [id, r] = live.entries().next().value as [number, SynthCt];
              live.delete(id);
              src.conntrack([{ ...r, kind: CtKind.Destroy }]);
            }
            src.snapshot.counters.insert_failed += st.drops;
            src.snapshot.counters.drop += st.drops;
            const before = sent.length;
            clock.t += st.dt;
            await s.tick();
            tick++;
            usedAt[tick] = st.used;
            for (const a of sent.slice(before)) tickOf.set(a.seq, tick);
          }
          await s.close();

          for (let i = 1; i < sent.length; i++) expect(sent[i]!.seq).toBeGreaterThan(sent[i - 1]!.seq);
          let firing: Alert | null = null;
          for (const a of sent) {
            const used = usedAt[tickOf.get(a.seq)!]!;
            expect(a.used).toBe(used);
            if (a.state === 'resolved') {
              expect(firing).not.toBeNull();
              expect(used).toBeLessThan(7);
              firing = null;
              continue;
            }
            if (firing === null) {
              // A new episode starts at >= 80% or with drops at capacity.
              expect(used >= 8).toBe(true);
            } else {
              // Re-sent only on escalation, or on more drops no sooner than resendMs.
              const escalated = RANK[a.severity] > RANK[firing.severity];
              if (!escalated) {
                expect(a.drops).toBeGreaterThan(firing.drops);
                expect(Date.parse(a.ts) - Date.parse(firing.ts)).toBeGreaterThanOrEqual(5000);
              }
              expect(RANK[a.severity]).toBeGreaterThanOrEqual(RANK[firing.severity]);
              expect(a.drops).toBeGreaterThanOrEqual(firing.drops);
            }
            // Critical is reached only at capacity (a re-send for more drops keeps the severity).
            const escalation = firing === null || RANK[a.severity] > RANK[firing.severity];
            if (escalation && a.severity === 'critical') expect(used >= 10 || used / 10 >= 0.95).toBe(true);
            firing = a;
          }
          // What is firing at the end agrees with the last thing sent.
          expect(s.firing().filter((a) => a.kind === 'nat_port_exhaustion').length).toBe(firing ? 1 : 0);
        },
      ),
      { numRuns: 150 },
    );
  });
});
