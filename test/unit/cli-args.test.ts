import { describe, expect, it } from 'vitest';
import { RCVBUF_MAX, RCVBUF_MIN, sizeFlag } from '../../src/cli/args.js';
import { resolveSettings } from '../../src/cli/serve-config.js';

describe('sizeFlag', () => {
  it('reads plain bytes and binary units', () => {
    expect(sizeFlag('rcvbuf', '8192', RCVBUF_MIN, RCVBUF_MAX)).toBe(8192);
    expect(sizeFlag('rcvbuf', '256K', RCVBUF_MIN, RCVBUF_MAX)).toBe(256 * 1024);
    expect(sizeFlag('rcvbuf', '64m', RCVBUF_MIN, RCVBUF_MAX)).toBe(64 * 1024 * 1024);
    expect(sizeFlag('rcvbuf', undefined, RCVBUF_MIN, RCVBUF_MAX)).toBeUndefined();
  });
  it('names the flag and the value when it is not a size or out of range', () => {
    expect(() => sizeFlag('rcvbuf', '1.5M', RCVBUF_MIN, RCVBUF_MAX)).toThrow(/--rcvbuf: '1.5M' is not a size/);
    expect(() => sizeFlag('rcvbuf', '2G', RCVBUF_MIN, RCVBUF_MAX)).toThrow(/--rcvbuf: 2G is out of range/);
  });
  it('comes from the config file too, and the flag wins', () => {
    expect(resolveSettings({}, { rcvbuf: '8K' }).rcvbufBytes).toBe(8192);
    expect(resolveSettings({ rcvbuf: '16K' }, { rcvbuf: '8K' }).rcvbufBytes).toBe(16384);
    expect(resolveSettings({}, {}).rcvbufBytes).toBeNull();
  });
});
