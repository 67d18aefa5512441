// The real binary: usage errors exit 2 with one line naming the flag; a missing namespace exits 1.
import { beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, ROOT, ensureBuilt, runCli } from '../helpers/cli-build.js';
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
    for (const f of ['--listen', '--netns', '--nat-ports', '--nflog-group', '--token', '--token-file', '--tls-cert', '--config', '--allow-origin', '--allow-host', '--insecure-plaintext', '--max-clients']) {
      expect(r.stdout).toContain(f);
    }
  });

  it.each([
    [['--listen', '0.0.0.0:0', '--token', 't'], /--tls-cert.*--insecure-plaintext/],
    [['--token-file', '/nonexistent/token'], /^natwatch: --token-file: cannot read/],
    [['--allow-origin', 'example.com'], /--allow-origin/],
    [['--allow-host', 'a:1'], /--allow-host/],
    [['--max-clients', '0'], /--max-clients/],
  ])('%j → exit 2: %s', async (args, re) => {
    const r = await runCli(['serve', ...args]);
    expect(r.code).toBe(2);
    expect(oneLine(r.stderr)).toBe(true);
    expect(r.stderr).toMatch(re);
  });

  it('a world-readable --token-file is refused (exit 2)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'nwc-tok-'));
    const f = join(dir, 'token');
    writeFileSync(f, 'secret\n', { mode: 0o644 });
    const r = await runCli(['serve', '--token-file', f]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/is readable by group or others \(mode 644\); chmod 600 it/);
    rmSync(dir, { recursive: true, force: true });
  });
});

describe('help that finds its way', () => {
  it('a bare natwatch prints the usage on stderr and exits 2', async () => {
    const r = await runCli([]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^usage: natwatch <command>/);
    expect(r.stderr).toContain("natwatch help <command>");
  });

  it("'natwatch help serve' prints serve's help", async () => {
    const [a, b] = await Promise.all([runCli(['help', 'serve']), runCli(['serve', '--help'])]);
    expect(a.code).toBe(0);
    expect(a.stdout).toBe(b.stdout);
    expect(a.stdout).toMatch(/^usage: natwatch serve/);
    expect((await runCli(['help'])).code).toBe(0);
    const bad = await runCli(['help', 'nope']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/unknown command 'nope'/);
  });

  it.each(['serve', 'tail', 'events', 'doctor', 'lab'])("'%s --help' ends with an example and lists the environment it reads", async (cmd) => {
    const r = await runCli([cmd, '--help']);
    expect(r.code).toBe(0);
    const text = r.stdout.trimEnd();
    expect(text).toMatch(/\nenvironment:/);
    expect(text).toMatch(new RegExp(`\\nexample:\\n(  .*\\n)*  .*natwatch ${cmd}[^\\n]*(\\n    [^\\n]*)?$`));
  });
});

describe('last line of defence', () => {
  it.each([
    ['uncaught exception', 'setTimeout(() => { throw new TypeError("boom from a timer"); }, 10);', /boom from a timer/],
    ['unhandled rejection', 'Promise.reject(new Error("nobody caught me"));', /nobody caught me/],
  ])('%s: one fatal log line, exit 70', async (kind, code, re) => {
    const script = `
      const { installFatalHandlers } = await import(${JSON.stringify(join(ROOT, 'dist/cli/serve.js'))});
      const { setupLogging, logger } = await import(${JSON.stringify(join(ROOT, 'dist/log.js'))});
      setupLogging({ level: 'info', json: true });
      installFatalHandlers(logger('serve'));
      ${code}
      setTimeout(() => process.exit(0), 5000);`;
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const c = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      c.stderr.on('data', (d) => (stderr += d));
      c.on('close', (code) => resolve({ code, stderr }));
    });
    expect(r.code).toBe(70);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    const rec = JSON.parse(lines[0]!) as { level: number; msg: string; err: string };
    expect(rec.level).toBe(60);
    expect(rec.msg).toBe(`${kind}: exiting`);
    expect(rec.err).toMatch(re);
  });
});
