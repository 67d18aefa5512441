// sysctl-guard restores on every way out. Exercised on a namespaced sysctl
// (net.ipv4.ip_local_port_range) inside a throwaway namespace, so no machine-wide value moves:
// a child node process takes the guard there and then is signalled, crashes, or is SIGKILLed.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeLive } from '../helpers/gate.js';

const KEY = 'net.ipv4.ip_local_port_range';

describeLive('sysctl-guard', () => {
  const ns = `nwd-${randomBytes(3).toString('hex')}-g`;
  let out = '';
  const read = () => execFileSync('ip', ['netns', 'exec', ns, 'sysctl', '-n', KEY]).toString().trim().replace(/\s+/g, ' ');
  let original = '';

  beforeAll(() => {
    out = mkdtempSync(join(tmpdir(), 'nwd-guard-'));
    // Compile just the guard (and errors.ts) so the child runs plain JS.
    writeFileSync(join(out, 'package.json'), '{"type":"module"}');
    execFileSync('npx', ['tsc', '--ignoreConfig', '--outDir', out, '--module', 'nodenext', '--target', 'es2022', '--skipLibCheck', '--types', 'node', 'src/lab/sysctl-guard.ts'], { stdio: 'pipe' });
    execFileSync('ip', ['netns', 'add', ns]);
    original = read();
  });
  afterAll(() => {
    spawnSync('ip', ['netns', 'del', ns]);
    rmSync(out, { recursive: true, force: true });
  });

  /** Runs `body` in a node child inside ns after taking the guard; resolves with its exit. */
  function child(body: string): Promise<{ code: number | null; signal: string | null; stdout: string }> {
    const script =
      `import { guardSysctl, readSysctl } from ${JSON.stringify(join(out, 'lab/sysctl-guard.js'))};\n` +
      `const g = guardSysctl(${JSON.stringify(KEY)}, '40000 40100');\n` +
      `console.log('set', readSysctl(${JSON.stringify(KEY)}).replace(/\\s+/g, ' '));\n` +
      body;
    return new Promise((resolve, reject) => {
      const p = spawn('ip', ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      p.stdout.on('data', (d) => (stdout += d));
      const timer = setTimeout(() => {
        p.kill('SIGKILL');
        reject(new Error('child hung'));
      }, 10_000);
      p.on('exit', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, stdout });
      });
    });
  }

  it('restore() puts the original back', async () => {
    const r = await child(`g.restore(); g.restore(); console.log('now', readSysctl(${JSON.stringify(KEY)}).replace(/\\s+/g, ' '));`);
    expect(r.stdout).toContain('set 40000 40100');
    expect(r.stdout).toContain(`now ${original}`);
    expect(read()).toBe(original);
  });

  it('one guard per key at a time: a second is refused, the first still restores the real original', async () => {
    const r = await child(
      `try { guardSysctl(${JSON.stringify(KEY)}, '40000 40200'); console.log('second taken'); } catch (e) { console.log('refused:', e.message); }\n` +
        `console.log('still', readSysctl(${JSON.stringify(KEY)}).replace(/\\s+/g, ' ')); g.restore();`,
    );
    expect(r.stdout).toMatch(/refused: net\.ipv4\.ip_local_port_range is already changed by natwatch \(pid \d+\)/);
    expect(r.stdout).toContain('still 40000 40100');
    expect(read()).toBe(original);
  });

  it('SIGTERM: restored, and the process still dies of the signal', async () => {
    const r = await child(`process.kill(process.pid, 'SIGTERM'); setTimeout(() => {}, 5000);`);
    expect(r.stdout).toContain('set 40000 40100');
    expect(r.signal).toBe('SIGTERM');
    expect(read()).toBe(original);
  });

  it('SIGINT with a handler of its own: restored, the handler decides', async () => {
    const r = await child(`process.on('SIGINT', () => { console.log('handler', readSysctl(${JSON.stringify(KEY)}).replace(/\\s+/g, ' ')); process.exit(7); }); process.kill(process.pid, 'SIGINT'); setTimeout(() => {}, 5000);`);
    expect(r.code).toBe(7);
    expect(r.stdout).toContain(`handler ${original}`);
    expect(read()).toBe(original);
  });

  it('uncaught error: restored on exit', async () => {
    const r = await child(`setTimeout(() => { throw new Error('boom'); }, 10);`);
    expect(r.code).toBe(1);
    expect(read()).toBe(original);
  });

  it('SIGKILL: left behind, repaired by the next guard user in that namespace', async () => {
    const r = await child(`process.kill(process.pid, 'SIGKILL');`);
    expect(r.signal).toBe('SIGKILL');
    expect(read()).toBe('40000 40100');
    const fix = await new Promise<number | null>((resolve) => {
      const p = spawn('ip', ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e',
        `import { repairStale } from ${JSON.stringify(join(out, 'lab/sysctl-guard.js'))}; console.log(repairStale());`]);
      p.on('exit', resolve);
    });
    expect(fix).toBe(0);
    expect(read()).toBe(original);
  });
});
