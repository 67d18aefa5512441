// The TTY log formatter and logger setup (JSON lines otherwise).
import { describe, expect, it } from 'vitest';
import { formatPretty, isLogLevel } from '../../src/log.js';

describe('log', () => {
  it('formats a pino record as one readable line', () => {
    const rec = { level: 40, time: Date.UTC(2026, 0, 2, 3, 4, 5, 678), pid: 1, hostname: 'h', module: 'server', client: 3, msg: 'client cannot take alerts', buffered: 70000 };
    expect(formatPretty(JSON.stringify(rec) + '\n')).toBe('03:04:05.678 WARN  [server] client cannot take alerts client=3 buffered=70000\n');
  });
  it('passes non-JSON through', () => {
    expect(formatPretty('plain text')).toBe('plain text\n');
  });
  it('knows the levels', () => {
    expect(isLogLevel('debug')).toBe(true);
    expect(isLogLevel('loud')).toBe(false);
  });
});
