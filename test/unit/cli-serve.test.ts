// The real binary: usage errors exit 2 with one line naming the flag; a missing namespace exits 1.
import { beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, ensureBuilt, runCli } from '../helpers/cli-build.js';
import { DROP_PRIVILEGE } from '../helpers/gate.js';

beforeAll(() => ensureBuilt(), 180_000);

const oneLine = (s: string): boolean => s.trim().split('\n').length === 1 && s.startsWith('natwatch: ');

describe('natwatch serve: bad input', () => {
  it('refuses a non-loopback listen without --token (exit 2, names --listen)', async () => {
    const r = await runCli(['serve', '--listen', '0.0.0.0:0']);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toBe(true);
    expect(r.stderr).toMatch(/--listen/);
    expect(r.stderr).toMatch(/--token/);
  });

  it.each([
    [['--listen', 'nonsense'], '--listen'],
    [['--listen', '127.0.0.1:70000'], '--listen'],
    [['--nat-ports', '60000-50000'], '--nat-ports'],
    [['--nat-ports', 'abc'], '--nat-ports'],
    [['--nflog-group', '70000'], '--nflog-group'],
    [['--tls-cert', '/nonexistent/cert.pem'], '--tls-key'],
    [['--tls-cert', '/nonexistent/c.pem', '--tls-key', '/nonexistent/k.pem'], '--tls-cert'],
    [['--log-level', 'loud'], '--log-level'],
    [['--frobnicate'], '--frobnicate'],
    [['--config', '/nonexistent/natwatch.yaml'], '--config'],
    [['--rcvbuf', '12X'], '--rcvbuf'],
    [['--rcvbuf', '1'], '--rcvbuf'],
  ])('%j → exit 2 naming %s', async (args, flag) => {
    const r = await runCli(['serve', ...args]);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toBe(true);
    expect(r.stderr).toContain(flag);
  });

  it('config file values are validated like flags, and flags win', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nwc-cfg-'));
    const yaml = join(dir, 'c.yaml');
    writeFileSync(yaml, 'listen: 0.0.0.0:7600\n');
    const r = await runCli(['serve', '--config', yaml]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--listen/);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, '{"natPorts": "1-2-3"}');
    expect((await runCli(['serve', '--config', bad])).stderr).toMatch(/--nat-ports/);
    writeFileSync(bad, '{"what": 1}');
    expect((await runCli(['serve', '--config', bad])).stderr).toMatch(/unknown setting 'what'/);
    // flag wins over the file: listen from the flag is bad, so the error names the flag value
    const r2 = await runCli(['serve', '--config', yaml, '--listen', 'x']);
    expect(r2.stderr).toMatch(/'x' is not HOST:PORT/);
  });

  it('a missing namespace is a one-line runtime error (exit 1)', async () => {
    const r = await runCli(['serve', '--netns', 'nwc-does-not-exist-4242']);
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toBe(true);
    expect(r.stderr).toMatch(/nwc-does-not-exist-4242/);
  });

  it.runIf(process.getuid?.() === 0 && existsSync('/usr/bin/setpriv'))('without privilege (uid 0, no capabilities): one line naming CAP_NET_ADMIN, exit 1', async () => {
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const c = spawn(DROP_PRIVILEGE[0], [...DROP_PRIVILEGE.slice(1), process.execPath, BIN, 'serve', '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      c.stderr.on('data', (d) => (stderr += d));
      const t = setTimeout(() => c.kill('SIGKILL'), 15_000);
      c.on('close', (code) => {
        clearTimeout(t);
        resolve({ code, stderr });
      });
    });
    expect(r.code).toBe(1);
    expect(oneLine(r.stderr)).toBe(true);
    expect(r.stderr).toMatch(/CAP_NET_ADMIN/);
  });

  it('--help exits 0 and lists the flags', async () => {
    const r = await runCli(['serve', '--help']);
    expect(r.code).toBe(0);
    for (const f of ['--listen', '--netns', '--nat-ports', '--nflog-group', '--token', '--tls-cert', '--config']) expect(r.stdout).toContain(f);
  });
});
