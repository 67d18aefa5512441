// The libFuzzer targets of test/fuzz (one per decoder), built with ASan + UBSan: every seed
// fixture, every committed corpus input and every crash reproducer replayed once (-runs=0),
// then a short seeded fuzz run from them. scripts/fuzz.sh runs the long campaigns.
// Without clang's libFuzzer runtime the same targets are built with standalone-main.cc (g++
// works); under CI clang must be there (.ci/run installs it).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { TARGETS, build, compilers, corpusDir, crashDir, writeSeeds } from '../fuzz/targets.mjs';

const dir = mkdtempSync(join(tmpdir(), 'nw-fuzz-'));
const { clang, replayCxx } = compilers();
const mode = clang ? 'fuzz' : 'replay';

function run(bin: string, args: string[]) {
  const r = spawnSync(bin, args, {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1', UBSAN_OPTIONS: 'print_stacktrace=1' },
  });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

const files = (d: string) => (existsSync(d) ? readdirSync(d).filter((f) => !f.startsWith('.')).map((f) => join(d, f)) : []);

describe('fuzz targets', () => {
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('have a compiler: clang with libFuzzer under CI', () => {
    if (process.env.CI) expect(clang, 'CI needs clang-14 and libclang-rt-14-dev').not.toBeNull();
    expect(replayCxx, 'no C++ compiler with -fsanitize=address,undefined').not.toBeNull();
  });

  for (const name of Object.keys(TARGETS)) {
    describe(name, () => {
      let bin = '';
      let seeds: string[] = [];

      it(`builds (${mode}) and replays its seeds, corpus and crash reproducers clean (-runs=0)`, () => {
        bin = build(name, mode, dir);
        seeds = writeSeeds(name, join(dir, 'seeds', name));
        expect(seeds.length, `no test/fixtures/${TARGETS[name]!.seeds.join('|')}*.hex`).toBeGreaterThan(0);
        const dirs = [join(dir, 'seeds', name), corpusDir(name), crashDir(name)].filter(existsSync);
        const r = run(bin, ['-runs=0', ...dirs]);
        expect(r.code, r.out).toBe(0);
        const replayed = Number(/INITED.*?corp: (\d+)/.exec(r.out)?.[1] ?? /Done (\d+) inputs/.exec(r.out)?.[1] ?? 0);
        expect(replayed, r.out).toBeGreaterThan(0);
      }, 240_000);

      it('runs every crash reproducer on its own clean', () => {
        for (const f of files(crashDir(name))) {
          const r = run(bin, ['-runs=0', f]);
          expect(r.code, `${f}\n${r.out}`).toBe(0);
        }
      }, 120_000);

      it('survives a short seeded fuzz run from its seeds (-seed=1, 100k inputs or 40 s)', () => {
        const args = ['-seed=1', '-runs=100000', '-max_total_time=40', '-print_final_stats=1', `-artifact_prefix=${dir}/${name}-`];
        const r = run(bin, mode === 'fuzz' ? [...args, join(dir, 'seeds', name)] : [...args, ...seeds]);
        expect(r.code, r.out).toBe(0);
        // libFuzzer: "Done N runs in T second(s)" (fewer than 100k only on a very loaded machine).
        const done = Number(/Done (\d+) runs|Done \d+ inputs, (\d+) mutated runs/.exec(r.out)?.slice(1).find(Boolean) ?? 0);
        expect(done, r.out).toBeGreaterThanOrEqual(1000);
      }, 120_000);
    });
  }
});
