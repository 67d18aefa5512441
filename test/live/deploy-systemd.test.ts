// deploy/systemd/natwatch.service keeps its promises on paper: systemd's own rating of the
// sandbox (`systemd-analyze security --offline=true`) stays at or under 2.5, with and without
// the --netns drop-in, and systemd reads every line of both files (no unknown or bad setting,
// which systemd would skip with a warning and leave that hole open). Running natwatch under
// the unit's privileges is in package.test.ts (it needs the installed tarball).
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli-build.js';
import { describeLive } from '../helpers/gate.js';

const MAX_EXPOSURE = 2.5;
const UNIT = join(ROOT, 'deploy/systemd/natwatch.service');
const DROPIN = join(ROOT, 'deploy/systemd/netns.conf');

/** Overall exposure and the warnings systemd printed while reading the unit. */
function analyze(unitPath: string, cwd: string): { exposure: number; warnings: string[]; out: string } {
  const r = spawnSync('systemd-analyze', ['security', '--offline=true', '--no-pager', unitPath], { cwd, encoding: 'utf8' });
  const m = /Overall exposure level for \S+: (\d+(?:\.\d+)?)/.exec(r.stdout);
  if (!m) throw new Error(`no exposure in systemd-analyze output (exit ${r.status}):\n${r.stdout}\n${r.stderr}`);
  const warnings = r.stderr.split('\n').filter((l) => /unknown|failed to parse|invalid|ignoring/i.test(l));
  return { exposure: Number(m[1]), warnings, out: r.stdout };
}

describeLive('systemd unit (systemd-analyze security --offline=true)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nwunit-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it(`natwatch.service: exposure ≤ ${MAX_EXPOSURE}, every line understood`, () => {
    const r = analyze(UNIT, ROOT);
    expect(r.warnings).toEqual([]);
    expect(r.exposure, r.out).toBeLessThanOrEqual(MAX_EXPOSURE);
    // The score must come from the settings natwatch depends on, not from luck.
    expect(r.out).toMatch(/✓ CapabilityBoundingSet=~CAP_SYS_ADMIN/);
    expect(r.out).toMatch(/✓ NoNewPrivileges=/);
    expect(r.out).toMatch(/✓ ProtectSystem=/);
    expect(r.out).toMatch(/✓ RestrictAddressFamilies=~AF_PACKET/);
  });

  it(`with the --netns drop-in (CAP_SYS_ADMIN): exposure ≤ ${MAX_EXPOSURE}, every line understood`, () => {
    copyFileSync(UNIT, join(dir, 'natwatch.service'));
    mkdirSync(join(dir, 'natwatch.service.d'));
    copyFileSync(DROPIN, join(dir, 'natwatch.service.d', 'netns.conf'));
    const r = analyze('natwatch.service', dir);
    expect(r.warnings).toEqual([]);
    expect(r.out).toMatch(/✗ CapabilityBoundingSet=~CAP_SYS_ADMIN/); // the drop-in was read
    expect(r.exposure, r.out).toBeLessThanOrEqual(MAX_EXPOSURE);
  });
}, { root: false, tools: ['systemd-analyze'] });
