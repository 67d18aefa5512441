import { describe, expect, it } from 'vitest';
import { unpack } from 'msgpackr';
import { FrameCache } from '../../src/server/encode.js';
import { FilterError, parseDst, parseSubscription } from '../../src/server/filter.js';
import { FakeStreamer } from '../helpers/fake-streamer.js';

describe('FrameCache', () => {
  it('encodes a broadcast once per format and reuses the frame', () => {
    const f = new FakeStreamer();
    let alert!: ReturnType<FakeStreamer['emitAlert']>;
    f.on('alert', (a) => (alert = a));
    f.emitAlert();
    const cache = new FrameCache({ type: 'alert', msg: alert });
    const j = cache.get('json');
    expect(cache.get('json')).toBe(j);
    expect(j.binary).toBe(false);
    expect(JSON.parse(j.data.toString())).toEqual(alert);
    const m = cache.get('msgpack');
    expect(cache.get('msgpack')).toBe(m);
    expect(m.binary).toBe(true);
    expect(unpack(m.data)).toEqual(alert);
    const e = cache.get('ecs');
    expect(JSON.parse(e.data.toString()).event.kind).toBe('alert');
  });
});

describe('parseSubscription', () => {
  it('defaults', () => {
    const s = parseSubscription({});
    expect([...s.filter.types]).toEqual(['alert', 'stats', 'gap']);
    expect(s).toMatchObject({ format: 'json', since: null, filter: { severity: null, dstIp: null, dstPort: null } });
  });
  it('parses every field and keeps unnamed ones from the base', () => {
    const base = parseSubscription({ format: 'msgpack', types: 'alert,event', severity: 'critical', dst: '[2001:DB8::8]:443', since: '7' });
    expect(base).toMatchObject({ format: 'msgpack', since: 7, filter: { severity: 'critical', dstIp: '2001:db8::8', dstPort: 443 } });
    const next = parseSubscription({ types: ['stats'] }, base);
    expect(next).toMatchObject({ format: 'msgpack', since: null, filter: { severity: 'critical', dstIp: '2001:db8::8' } });
    expect([...next.filter.types]).toEqual(['stats']);
  });
  it('names the bad field', () => {
    expect(() => parseSubscription({ types: 'alert,x' })).toThrow(/^types: 'x'/);
    expect(() => parseSubscription({ severity: 'info' })).toThrow(FilterError);
    expect(() => parseSubscription({ since: '1e3' })).toThrow(/^since/);
    expect(() => parseSubscription({ types: '' })).toThrow(/types: empty/);
  });
  it('dst forms', () => {
    expect(parseDst('198.51.100.8')).toEqual({ ip: '198.51.100.8', port: null });
    expect(parseDst('198.51.100.8:80')).toEqual({ ip: '198.51.100.8', port: 80 });
    expect(parseDst('2001:db8::8')).toEqual({ ip: '2001:db8::8', port: null });
    expect(parseDst('')).toEqual({ ip: null, port: null });
    expect(() => parseDst('example.com:80')).toThrow(/dst/);
    expect(() => parseDst('198.51.100.8:')).toThrow(/dst/);
  });
});
