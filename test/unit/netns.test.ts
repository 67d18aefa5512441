import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { checkNetns, globRegExp, listNetns, netnsName, netnsPath, ownNetns } from '../../src/netns.js';
import { NamespaceFollower } from '../../src/netns-follow.js';

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

  it('lists mounted namespaces by name, skipping plain files', () => {
    const dir = mkdtempSync(join(tmpdir(), 'nwm-'));
    dirs.push(dir);
    // Two names for the same namespace (ours) and a name `ip netns add` has not mounted yet.
    symlinkSync('/proc/self/ns/net', join(dir, 'b'));
    symlinkSync('/proc/self/ns/net', join(dir, 'a'));
    writeFileSync(join(dir, 'c'), '');
    const own = ownNetns();
    expect(own.name).toBeNull();
    expect(own.ino).toBeGreaterThan(0);
    expect(listNetns(dir)).toEqual([
      { name: 'a', path: join(dir, 'a'), ino: own.ino },
      { name: 'b', path: join(dir, 'b'), ino: own.ino },
    ]);
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

describe('NamespaceFollower', () => {
  const own = ownNetns();
  const list = [
    { name: 'cni-1', path: '/run/netns/cni-1', ino: 11 },
    { name: 'lab-r', path: '/run/netns/lab-r', ino: 12 },
    { name: 'seen', path: '/run/netns/seen', ino: 12 },
    { name: 'twin-a', path: '/run/netns/twin-a', ino: 13 },
    { name: 'twin-b', path: '/run/netns/twin-b', ino: 13 },
    { name: 'self', path: '/run/netns/self', ino: own.ino },
  ];
  const names = (f: NamespaceFollower) => f.targets().map((t) => [t.name, t.found]);

  it('all: own first, then one name per namespace; an excluded name does not hide another name of its namespace', () => {
    const f = new NamespaceFollower({ netns: ['all'], exclude: ['cni-*', '*-r'] }, { list: () => list });
    expect(f.following).toBe(true);
    expect(names(f)).toEqual([[null, true], ['seen', true], ['twin-a', true]]);
  });

  it('explicit names stay as given and are never followed; all adds the rest without duplicates', () => {
    expect(names(new NamespaceFollower({ netns: ['lab-r'] }, { list: () => list }))).toEqual([['lab-r', false]]);
    const f = new NamespaceFollower({ netns: [null, 'all'] }, { list: () => list });
    expect(names(f)).toEqual([[null, false], ['cni-1', true], ['lab-r', true], ['twin-a', true]]);
    expect(new NamespaceFollower({ netns: ['x', 'x'] }).targets()).toHaveLength(1);
  });
});
