// The kernel-facts decoders (nf_tables, x_tables, rtnetlink, inet_diag) under AddressSanitizer +
// UBSan, without the addon or root: the kernel bytes captured from this machine
// (test/fixtures/facts-raw-*.hex) decode to the expected items, and 20k truncated or mutated
// copies decode without an out-of-bounds access, undefined operation or malformed output.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { readFixture } from '../fixtures/fixtures.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'nwf-asan-'));
const SEEDS: Array<[string, string]> = [
  ['nft', 'facts-raw-nft'],
  ['ipt', 'facts-raw-ipt-legacy-0'],
  ['ipt', 'facts-raw-ipt-legacy-1'],
  ['ip6t', 'facts-raw-ip6t-legacy'],
  ['rtnl', 'facts-raw-rtnl'],
  ['tcp', 'facts-raw-diag-tcp'],
  ['udp', 'facts-raw-diag-udp'],
];

describe('kernel-facts decoders under sanitizers', () => {
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('decode the captured kernel bytes, and survive 20k truncated/mutated copies', () => {
    const bin = join(dir, 'harness');
    execFileSync('g++', [
      '-std=c++17', '-O1', '-g', '-fsanitize=address,undefined', '-fno-sanitize-recover=all', '-fno-exceptions',
      `-I${ROOT}native`, `${ROOT}test/fixtures/facts-asan-harness.cc`,
      ...['nft-decoder', 'xt-decoder', 'ipt-legacy', 'rtnl-decoder', 'diag-decoder'].map((f) => `${ROOT}native/${f}.cc`), '-o', bin,
    ], { timeout: 120_000 });
    const args = SEEDS.map(([kind, name]) => {
      const p = join(dir, `${name}.bin`);
      writeFileSync(p, readFixture(name).bytes);
      return `${kind}:${p}`;
    });
    const out = execFileSync(bin, ['20000', ...args], { timeout: 90_000, env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1' } }).toString();
    const seeds = [...out.matchAll(/^seed (\w+) items=(\d+) errors=(\d+)$/gm)].map((m) => [m[1], Number(m[2]), Number(m[3])]);
    // Unmutated: everything decodes, nothing is malformed.
    for (const [kind, items, errors] of seeds) {
      expect(errors, String(kind)).toBe(0);
      expect(items, String(kind)).toBeGreaterThan(0);
    }
    // The TCP fixture: 4 connections to 198.51.100.1:8080 in the same namespace: the client
    // ends make one key; the listener and the 4 accepted ends (on the listener's port) none.
    // UDP: the one connected socket.
    expect(/^counts tcp items=(\d+)$/m.exec(out)?.[1]).toBe('1');
    expect(/^counts udp items=(\d+)$/m.exec(out)?.[1]).toBe('1');
    const m = /^ok iterations=(\d+) items=(\d+) errors=(\d+)$/m.exec(out);
    expect(m).not.toBeNull();
    expect(Number(m![2])).toBeGreaterThan(0);
    expect(Number(m![3])).toBeGreaterThan(0); // mutations are caught and counted
  }, 180_000);
});
