// The C++ decoders under AddressSanitizer + UBSan (g++, no root, no addon): fixtures truncated
// and mutated 200k times through the reader's decode path. Fails on any out-of-bounds access,
// misaligned or undefined operation, or leak.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FIXTURES, readFixture } from '../fixtures/fixtures.js';

const ROOT = new URL('../../', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'nwa-asan-'));

describe('native decoders under sanitizers', () => {
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('survive 200k truncated/mutated datagrams with no ASan/UBSan report', () => {
    const bin = join(dir, 'harness');
    execFileSync('g++', [
      '-std=c++17', '-O1', '-g', '-fsanitize=address,undefined', '-fno-sanitize-recover=all', '-fno-exceptions',
      `-I${ROOT}native`, `${ROOT}test/fixtures/asan-harness.cc`,
      `${ROOT}native/ct-decoder.cc`, `${ROOT}native/nflog-decoder.cc`, `${ROOT}native/records.cc`, '-o', bin,
    ], { timeout: 90_000 });
    const inputs = FIXTURES.map((name) => {
      const p = join(dir, `${name}.bin`);
      writeFileSync(p, readFixture(name).bytes);
      return p;
    });
    const out = execFileSync(bin, ['200000', ...inputs], { timeout: 60_000, env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1' } }).toString();
    const m = /^ok iterations=(\d+) records=(\d+) errors=(\d+)$/m.exec(out);
    expect(m).not.toBeNull();
    expect(Number(m![2])).toBeGreaterThan(0); // the mutated inputs still decode often
    expect(Number(m![3])).toBeGreaterThan(0); // and fail often, counted
  }, 120_000);
});
