import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkNetns, globRegExp, listNetns, netnsName, netnsPath, ownNetns } from '../../src/netns.js';

let dirs: string[] = [];
afterEach(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
  dirs = [];
});

describe('netns helper', () => {
  it('resolves names to /var/run/netns and names paths back', () => {
    expect(netnsPath('lab1')).toBe('/var/run/netns/lab1');
    expect(netnsPath('/proc/1/ns/net')).toBe('/proc/1/ns/net');
    expect(netnsPath(undefined)).toBeNull();
    expect(netnsPath('')).toBeNull();
    expect(netnsName('/var/run/netns/lab1')).toBe('lab1');
    expect(netnsName('/run/netns/lab1')).toBe('lab1');
    expect(netnsName('/proc/1/ns/net')).toBe('/proc/1/ns/net');
  });

  it('checks a path with one-line errors: missing, not a namespace; accepts a namespace file', () => {
    expect(() => checkNetns('/var/run/netns/nwm-no-such-ns')).toThrow(expect.objectContaining({ code: 'ENETNS', message: "network namespace 'nwm-no-such-ns' not found (/var/run/netns/nwm-no-such-ns)" }));
    const dir = mkdtempSync(join(tmpdir(), 'nwm-'));
    dirs.push(dir);
    writeFileSync(join(dir, 'plain'), '');
    expect(() => checkNetns(join(dir, 'plain'))).toThrow(expect.objectContaining({ code: 'ENETNS', message: `'${join(dir, 'plain')}' is not a network namespace` }));
    expect(() => checkNetns('/proc/self/ns/net')).not.toThrow();
  });

  it('lists mounted namespaces once each, skipping plain files and the own namespace when asked', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nwm-'));
    dirs.push(dir);
    // Two names for the same namespace (ours) and a name `ip netns add` has not mounted yet.
    symlinkSync('/proc/self/ns/net', join(dir, 'b'));
    symlinkSync('/proc/self/ns/net', join(dir, 'a'));
    writeFileSync(join(dir, 'c'), '');
    const own = ownNetns();
    expect(own.name).toBeNull();
    expect(own.ino).toBeGreaterThan(0);
    expect(listNetns(dir)).toEqual([{ name: 'a', path: join(dir, 'a'), ino: own.ino }]);
    expect(listNetns(dir, own.ino)).toEqual([]);
    expect(listNetns(join(dir, 'missing'))).toEqual([]);
  });

  it('matches shell globs', () => {
    const m = (g: string, s: string) => globRegExp(g).test(s);
    expect(m('cni-*', 'cni-1234')).toBe(true);
    expect(m('cni-*', 'xcni-1')).toBe(false);
    expect(m('ns?', 'ns1')).toBe(true);
    expect(m('ns?', 'ns12')).toBe(false);
    expect(m('ns[0-3]', 'ns2')).toBe(true);
    expect(m('ns[!0-3]', 'ns2')).toBe(false);
    expect(m('ns[!0-3]', 'ns7')).toBe(true);
    expect(m('a.b', 'axb')).toBe(false);
    expect(m('a[', 'a[')).toBe(true);
    expect(m('(x)|y+', '(x)|y+')).toBe(true);
  });
});
