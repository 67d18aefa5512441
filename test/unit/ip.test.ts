// The one address module: parsing (addrWords), formatting (RFC 5952) and range arithmetic.
import { describe, expect, it } from 'vitest';
import { addrWords, formatBytes, formatGroups, inRange, ipFamily, prefixRange, rangeSize } from '../../src/source/ip.js';

describe('address text', () => {
  it('parses IPv4, IPv6 and IPv6 with a trailing dotted quad; rejects the rest', () => {
    expect(addrWords('192.0.2.1')).toEqual([0xc0000201]);
    expect(addrWords('2001:db8::1')).toEqual([0x20010db8, 0, 0, 1]);
    expect(addrWords('::ffff:192.0.2.1')).toEqual([0, 0, 0xffff, 0xc0000201]);
    for (const bad of ['192.0.2.256', '1::2::3', 'x', '', '1:2:3:4:5:6:7:8:9', '::ffff:1.2.3']) expect(addrWords(bad), bad).toBeNull();
    expect([ipFamily('192.0.2.1'), ipFamily('::1'), ipFamily('nope')]).toEqual([4, 6, 0]);
  });

  it('formats RFC 5952: lowercase, the longest zero run compressed, the first on a tie, no single group', () => {
    expect(formatGroups([0x2001, 0xdb8, 0, 0, 1, 0, 0, 1])).toBe('2001:db8::1:0:0:1');
    expect(formatGroups([0x2001, 0xdb8, 0, 1, 1, 1, 1, 1])).toBe('2001:db8:0:1:1:1:1:1');
    expect(formatGroups([0, 0, 0, 0, 0, 0, 0, 0])).toBe('::');
    expect(formatBytes(Uint8Array.from([198, 51, 100, 1]))).toBe('198.51.100.1');
    expect(formatBytes(Uint8Array.from([0x20, 0x01, 0x0d, 0xb8, ...Array(11).fill(0), 1]))).toBe('2001:db8::1');
  });

  it('ranges: prefixes, membership by family, sizes', () => {
    expect(prefixRange('203.0.113.5', 30)).toEqual({ lo: '203.0.113.4', hi: '203.0.113.7' });
    expect(prefixRange('2001:db8::5', 126)).toEqual({ lo: '2001:db8::4', hi: '2001:db8::7' });
    expect(inRange('203.0.113.6', { lo: '203.0.113.4', hi: '203.0.113.7' })).toBe(true);
    expect(inRange('::ffff:203.0.113.6', { lo: '203.0.113.4', hi: '203.0.113.7' })).toBe(false);
    expect(rangeSize({ lo: '203.0.113.1', hi: '203.0.113.3' })).toBe(3);
  });
});
