// Pure rendering of the tail view: alert line colours, block rows fitting the width, ETA.
import { describe, expect, it } from 'vitest';
import { alertLine, bar, eta, printable, renderBlock, alertId, type ViewState } from '../../src/cli/tail-view.js';
import { FakeStreamer } from '../helpers/fake-streamer.js';

const strip = (s: string): string => s.replace(/\x1b\[[0-9;]*m/g, '');

describe('tail view', () => {
  const f = new FakeStreamer();
  it('colours: critical firing red, warning firing yellow, resolved green; plain without colour', () => {
    expect(alertLine(f.emitAlert({ severity: 'critical' }), true)).toMatch(/^\x1b\[31m.*FIRING/);
    expect(alertLine(f.emitAlert({ severity: 'warning' }), true)).toMatch(/^\x1b\[33m/);
    expect(alertLine(f.emitAlert({ state: 'resolved' }), true)).toMatch(/^\x1b\[32m.*RESOLVED/);
    const plain = alertLine(f.emitAlert({ drops: 3 }), false);
    expect(plain).not.toContain('\x1b');
    expect(plain).toMatch(/CRIT FIRING +nat_port_exhaustion tcp 198\.51\.100\.1 → 198\.51\.100\.8:80 10\/10 drops 3 — /);
    expect(alertLine(f.emitAlert({ kind: 'conntrack_table_full', key: {}, used: null, capacity: null }), false)).toContain('conntrack_table_full host —');
  });

  it('strips control characters from server-supplied text', () => {
    const evil = f.emitAlert({
      message: 'ok\x1b]0;pwned\x07\x1b[2J\r\nFAKE CRIT line\u202eevil\x9b31m',
      key: { prefix: 'blk\x1b[8m ', group: 5, proto: 'tcp\x00', dstIp: '198.51.100.8', dstPort: 22 },
      kind: 'nflog_drop',
    });
    const line = alertLine(evil, false);
    expect(line).not.toMatch(/[\x00-\x1f\x7f-\x9f\u202e]/);
    expect(line).toContain('ok]0;pwned[2JFAKE CRIT lineevil31m');
    expect(line).toContain('nflog 5 "blk[8m" tcp → 198.51.100.8:22');
    expect(printable('a\tb\u2066c')).toBe('abc');
    const st: ViewState = { status: 'x\x1b[1Ay', stats: null, firing: new Map() };
    expect(renderBlock(st, 80, false)[1]).toBe('x[1Ay');
  });

  it('an aggregate nflog alert (no destination) shows the number of destinations', () => {
    const a = f.emitAlert({ kind: 'nflog_drop', key: { prefix: 'scan ', group: 5, proto: null, dstIp: null, dstPort: null } as never, used: null, capacity: null });
    expect(alertLine(a, false)).toContain('nflog 5 "scan"  → many destinations');
    a.destinations = 900;
    expect(alertLine(a, false)).toContain('nflog 5 "scan"  → 900 destinations');
  });

  it('eta and bar', () => {
    expect([eta(null), eta(0), eta(42.4), eta(600), eta(90_000)]).toEqual(['-', 'now', '42s', '10m', '25h']);
    expect(bar(0.5, 10)).toBe('█████░░░░░');
    expect(bar(7, 4)).toBe('████');
    expect(bar(Number.NaN, 3)).toBe('░░░');
  });

  it('every block row fits the width; top rows join drops and ETA of the firing alert', () => {
    const key = { proto: 'tcp', natIp: '198.51.100.1', dstIp: '198.51.100.8', dstPort: 80 };
    f.topEntries = [{ netns: null, key, used: 9, capacity: 10, utilization: 0.9, newPerSec: 12 }];
    const a = f.emitAlert({ netns: null, key, used: 9, drops: 4, etaSeconds: 30 });
    const st: ViewState = { status: 'ws://127.0.0.1:7600 connected', stats: f.emitStats(), firing: new Map([[alertId(a), a]]) };
    for (const width of [40, 80, 119]) {
      const rows = renderBlock(st, width, true).map(strip);
      for (const r of rows) expect(r.length, r).toBeLessThanOrEqual(width);
    }
    const wide = renderBlock(st, 119, false);
    expect(wide.find((r) => r.startsWith('tcp 198.51.100.1'))).toMatch(/90%\s+9\/10\s+12\s+4\s+30s$/);
    expect(wide.find((r) => r.startsWith('conntrack '))).toContain('120/262144');
  });
});
