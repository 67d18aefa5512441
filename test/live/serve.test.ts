// The real daemon on a lab router: NAT ports run out, the stream says so; SIGHUP swaps the
// token; SIGTERM closes clients with 1001 and exits 0.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADDR, type Lab } from '../../src/lab/topology.js';
import { holdConnect } from '../../src/lab/scenarios/traffic.js';
import type { Load } from '../../src/lab/scenarios/types.js';
import { ensureBuilt, ROOT, spawnCli } from '../helpers/cli-build.js';
import { TestClient } from '../helpers/fake-streamer.js';
import { natLab } from '../helpers/nat-lab.js';
import { describeLive } from '../helpers/gate.js';

/** Start `natwatch serve`, resolve with its ws URL from the 'listening' log line. */
function startServe(args: string[]): Promise<{ child: ChildProcess; url: string; stderr: () => string }> {
  const child = spawnCli(['serve', ...(args.includes('--listen') ? [] : ['--listen', '127.0.0.1:0']), ...args]);
  let err = '';
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`serve did not start: ${err}`)), 20_000);
    child.stderr!.on('data', (d: Buffer) => {
      err += d;
      const m = /"url":"(wss?:\/\/[^"]+)"/.exec(err);
      if (m) {
        clearTimeout(t);
        resolve({ child, url: m[1]!, stderr: () => err });
      }
    });
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`serve exited ${code}: ${err}`));
    });
  });
}

const exited = (c: ChildProcess): Promise<number | null> =>
  c.exitCode !== null ? Promise.resolve(c.exitCode) : new Promise((r) => c.once('exit', (code) => r(code)));

describeLive('natwatch serve (root: lab namespaces)', () => {
  let lab: Lab;
  let serve: ChildProcess | null = null;
  const loads: Load[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'nwc-serve-'));

  beforeAll(async () => {
    ensureBuilt();
    lab = await natLab('nwc');
  }, 180_000);
  afterAll(async () => {
    if (serve && serve.exitCode === null) {
      serve.kill('SIGKILL');
      await exited(serve);
    }
    for (const l of loads) await l.release();
    await lab?.destroy();
  });

  it('streams nat_port_exhaustion, serves /v1/top, reloads the token on SIGHUP, stops on SIGTERM', async () => {
    const cfg = join(dir, 'natwatch.yaml');
    writeFileSync(cfg, 'token: first-token\nlog-level: info\n');
    const s = await startServe(['--netns', lab.router, '--config', cfg]);
    serve = s.child;
    expect(s.stderr()).not.toContain('first-token');
    const base = s.url.replace('ws://', 'http://').replace('/v1/stream', '');

    const c = await TestClient.open(`${s.url}?types=alert,stats&token=first-token`);
    expect(await c.next('hello')).toMatchObject({ netns: lab.router }); // the name as given
    await c.next('stats', 1, 5000);

    const load = await holdConnect(lab, lab.client, { proto: 'tcp', to: `${ADDR.server}:80`, count: 15, timeoutMs: 2000, holdMs: 60_000 });
    loads.push(load);
    expect(load.ok).toBe(10);
    await c.until((r) => r.some((x) => x.msg.type === 'alert' && x.msg.kind === 'nat_port_exhaustion' && x.msg.state === 'firing'), 15_000);
    const alert = c.ofType('alert').find((a) => a.kind === 'nat_port_exhaustion')!;
    expect(alert).toMatchObject({ key: { proto: 'tcp', natIp: ADDR.routerOut, dstIp: ADDR.server, dstPort: 80 }, used: 10, capacity: 10, severity: 'critical' });
    const top = (await (await fetch(`${base}/v1/top`, { headers: { authorization: 'Bearer first-token' } })).json()) as Array<{ key: { dstIp: string }; used: number }>;
    expect(top[0]).toMatchObject({ key: { dstIp: ADDR.server }, used: 10 });
    const firing = (await (await fetch(`${base}/v1/alerts?token=first-token`)).json()) as Array<{ kind: string }>;
    expect(firing.map((a) => a.kind)).toContain('nat_port_exhaustion');
    const metrics = await (await fetch(`${base}/metrics?token=first-token`)).text();
    // A named namespace's series carry its name (natwatch's own would have no netns label).
    expect(metrics).toMatch(new RegExp(`^natwatch_alerts_firing\\{kind="nat_port_exhaustion",severity="critical",netns="${lab.router}"\\} 1$`, 'm'));
    expect(metrics).toMatch(new RegExp(`^natwatch_nat_ports_used\\{proto="tcp",nat_ip="198\\.51\\.100\\.1",dst_ip="198\\.51\\.100\\.8",dst_port="80",netns="${lab.router}"\\} 10$`, 'm'));

    // SIGHUP: the new token applies to new requests; the stream opened with the old one is
    // closed with 1008 (a leaked token stops working at once).
    writeFileSync(cfg, 'token: second-token\n');
    serve.kill('SIGHUP');
    const deadline = Date.now() + 5000;
    while ((await fetch(`${base}/v1/top?token=second-token`)).status !== 200 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect((await fetch(`${base}/v1/top?token=second-token`)).status).toBe(200);
    expect((await fetch(`${base}/v1/top?token=first-token`)).status).toBe(401);
    expect(await c.closedP).toBe(1008);
    const c2 = await TestClient.open(`${s.url}?types=alert&token=second-token`);
    await c2.next('hello');

    serve.kill('SIGTERM');
    expect(await c2.closedP).toBe(1001);
    expect(await exited(serve)).toBe(0);
    expect(s.stderr()).toMatch(/"msg":"stopped"/);
    expect(s.stderr()).not.toMatch(/first-token|second-token/);
  });

  it('SIGINT also stops cleanly (exit 0)', async () => {
    const s = await startServe(['--netns', lab.router]);
    serve = s.child;
    const c = await TestClient.open(s.url);
    await c.next('hello');
    serve.kill('SIGINT');
    expect(await c.closedP).toBe(1001);
    expect(await exited(serve)).toBe(0);
  });

  it('examples/embed.mjs: the library embedded in an http.Server', async () => {
    const ex = spawn(process.execPath, [join(ROOT, 'examples/embed.mjs'), lab.router, '0'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    serve = ex;
    let out = '';
    const port = await new Promise<number>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`example did not start: ${out}`)), 20_000);
      const on = (d: Buffer): void => {
        out += d;
        const m = /127\.0\.0\.1:(\d+)/.exec(out);
        if (m) {
          clearTimeout(t);
          resolve(Number(m[1]));
        }
      };
      ex.stdout!.on('data', on);
      ex.stderr!.on('data', on);
    });
    expect(await (await fetch(`http://127.0.0.1:${port}/elsewhere`)).text()).toBe('my service\n');
    const c = await TestClient.open(`ws://127.0.0.1:${port}/v1/stream`);
    expect(await c.next('hello')).toMatchObject({ netns: lab.router }); // the name as given
    await c.next('stats', 1, 5000);
    ex.kill('SIGTERM');
    expect(await c.closedP).toBe(1001);
    expect(await exited(ex)).toBe(0);
  });

  it('--listen 0.0.0.0 with --token and --tls-cert/--tls-key serves wss://', async () => {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
    const s = await startServe(['--netns', lab.router, '--listen', '0.0.0.0:0', '--token', 'tls-tok', '--tls-cert', join(dir, 'cert.pem'), '--tls-key', join(dir, 'key.pem')]);
    serve = s.child;
    const port = Number(/:(\d+)\/v1\/stream$/.exec(s.url)![1]);
    expect(s.url.startsWith('wss://')).toBe(true);
    const ca = readFileSync(join(dir, 'cert.pem'));
    await expect(TestClient.open(`wss://127.0.0.1:${port}/v1/stream`, { ca })).rejects.toThrow('HTTP 401');
    const c = await TestClient.open(`wss://127.0.0.1:${port}/v1/stream`, { ca, headers: { authorization: 'Bearer tls-tok' } });
    expect(await c.next('hello')).toMatchObject({ netns: lab.router }); // the name as given
    serve.kill('SIGTERM');
    expect(await c.closedP).toBe(1001);
    expect(await exited(serve)).toBe(0);
    expect(s.stderr()).not.toContain('tls-tok');
    expect(s.stderr()).toMatch(/--token is visible to every local user in the process list/);
  });

  it('--token-file on a plaintext non-loopback listener: warned; a SIGHUP that would drop the token is refused', async () => {
    const tf = join(dir, 'token');
    writeFileSync(tf, 'file-tok\n', { mode: 0o600 });
    const cfg = join(dir, 'exposed.yaml');
    writeFileSync(cfg, 'listen: 0.0.0.0:0\ninsecurePlaintext: true\ntokenFile: ' + tf + '\n');
    const s = await startServe(['--netns', lab.router, '--config', cfg, '--listen', '0.0.0.0:0']);
    serve = s.child;
    expect(s.stderr()).toMatch(/"level":40.*--insecure-plaintext: the token and every alert cross the network unencrypted/);
    expect(s.stderr()).not.toMatch(/process list/);
    const port = Number(/:(\d+)\/v1\/stream$/.exec(s.url)![1]);
    const c = await TestClient.open(`ws://127.0.0.1:${port}/v1/stream`, { headers: { authorization: 'Bearer file-tok' } });
    await c.next('hello');
    // The operator drops the token from the file: the listener is on 0.0.0.0 until a restart,
    // so the reload is refused, logged, and the token kept.
    writeFileSync(cfg, 'insecurePlaintext: true\n');
    serve.kill('SIGHUP');
    const until = Date.now() + 5000;
    while (!/SIGHUP: (refused|config not reloaded)/.test(s.stderr()) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    expect(s.stderr()).toMatch(/"level":50[^\n]*non-loopback[^\n]*SIGHUP: (refused|config not reloaded)/);
    expect((await fetch(`http://127.0.0.1:${port}/v1/top`)).status).toBe(401);
    expect(c.closeCode).toBe(null);
    serve.kill('SIGTERM');
    expect(await c.closedP).toBe(1001);
    expect(await exited(serve)).toBe(0);
    expect(s.stderr()).not.toContain('file-tok');
  });
});
