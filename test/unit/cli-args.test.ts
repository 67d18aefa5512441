import { describe, expect, it } from 'vitest';
import { RCVBUF_MAX, RCVBUF_MIN, sizeFlag } from '../../src/cli/args.js';
import { resolveSettings } from '../../src/cli/serve-config.js';
import { UsageError } from '../../src/errors.js';

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

describe('resolveSettings: natRules', () => {
  it('keeps well-formed rules, ports as A-B or [A, B]', () => {
    const s = resolveSettings({}, { natRules: [{ dstIp: '198.51.100.8', dstPort: 443, proto: 'tcp', ports: '50000-50099' }, { natIp: '2001:db8::1', ports: [1024, 2047] }] });
    expect(s.natRules).toEqual([
      { dstIp: '198.51.100.8', dstPort: 443, proto: 'tcp', ports: [50000, 50099] },
      { natIp: '2001:db8::1', ports: [1024, 2047] },
    ]);
    expect(resolveSettings({}, {}).natRules).toBeNull();
  });

  it('names the entry and field of a malformed rule in a one-line usage error', () => {
    const bad = (rule: unknown) => () => resolveSettings({}, { natRules: [{ ports: '1-10' }, rule] });
    expect(bad({})).toThrow(UsageError);
    expect(bad({})).toThrow('natRules[1].ports: required (a port range A-B)');
    expect(bad({ ports: '9-1' })).toThrow("natRules[1].ports: '9-1' is not a port range within 1-65535");
    expect(bad({ ports: '1-9', dstIp: 'example' })).toThrow("natRules[1].dstIp: 'example' is not an IP address");
    expect(bad({ ports: '1-9', dstPort: 0 })).toThrow("natRules[1].dstPort: '0' is not a port 1-65535");
    expect(bad({ ports: '1-9', port: 80 })).toThrow("natRules[1]: unknown field 'port'");
    expect(bad('1-9')).toThrow("natRules[1]: must be a mapping with 'ports'");
    expect(() => resolveSettings({}, { natRules: { ports: '1-9' } })).toThrow('natRules: must be a list');
  });
});

describe('--netns and --netns-exclude', () => {
  it('are repeatable, kept as given, and come from the config file as a string or a list', () => {
    expect(resolveSettings({}, {}).netns).toEqual([]);
    expect(resolveSettings({ netns: ['a', '/proc/1/ns/net'] }).netns).toEqual(['a', '/proc/1/ns/net']);
    expect(resolveSettings({}, { netns: 'edge' }).netns).toEqual(['edge']);
    expect(resolveSettings({}, { netns: ['all'], 'netnsExclude': ['cni-*'] })).toMatchObject({ netns: ['all'], netnsExclude: ['cni-*'] });
  });
  it('reject an exclude without all, an empty name, and a pattern with a slash', () => {
    expect(() => resolveSettings({ netns: ['a'], netnsExclude: ['x*'] })).toThrow(/^--netns-exclude: only with --netns all$/);
    expect(() => resolveSettings({ netns: [''] })).toThrow(/^--netns: empty name$/);
    expect(() => resolveSettings({ netns: ['all'], netnsExclude: ['a/b'] })).toThrow(/--netns-exclude: 'a\/b' is not a name pattern/);
    expect(() => resolveSettings({}, { netns: [1] })).toThrow(/--netns: expected a string or a list of strings/);
  });
});
