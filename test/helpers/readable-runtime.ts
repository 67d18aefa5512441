// A world-readable copy of what `natwatch` needs at run time (bin, dist, lab, package.json, the
// built addon, the production dependencies), for tests that run it as another uid: a checkout
// under a 0700 directory (/root/natwatch, as a newcomer clones it) is unreadable to uid 65534.
// Tests that only need "no privilege" stay uid 0 and drop capabilities instead (gate.ts).
import { execFileSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { ROOT, ensureBuilt } from './cli-build.js';

let copy: string | null = null;

/** Path of bin/natwatch.js in the copy; made once per test file (worker). */
export function readableRuntime(): string {
  if (copy) return join(copy, 'bin/natwatch.js');
  ensureBuilt();
  const dir = mkdtempSync(join(tmpdir(), 'nwrt-'));
  for (const p of ['bin', 'dist', 'lab', 'package.json', 'build/Release/natwatch.node']) {
    mkdirSync(dirname(join(dir, p)), { recursive: true });
    cpSync(join(ROOT, p), join(dir, p), { recursive: true });
  }
  const deps = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: ROOT, encoding: 'utf8' })
    .split('\n')
    .map((p) => relative(ROOT, p))
    .filter((p) => p.startsWith('node_modules'))
    .sort();
  let last = '';
  for (const p of deps) {
    if (last && p.startsWith(`${last}/`)) continue; // already inside a copied package
    cpSync(join(ROOT, p), join(dir, p), { recursive: true, dereference: true });
    last = p;
  }
  chmodSync(dir, 0o755);
  execFileSync('chmod', ['-R', 'a+rX', dir]);
  copy = dir;
  return join(dir, 'bin/natwatch.js');
}

/** Removes the copy (call from the test file's afterAll: a worker may end without 'exit'). */
export function removeReadableRuntime(): void {
  if (copy) rmSync(copy, { recursive: true, force: true });
  copy = null;
}
