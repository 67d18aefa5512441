// `natwatch lab` as a user runs it (built binary): exit codes, the narration, and cleanup on
// every way out — normal end, --keep, Ctrl-C in the middle.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { DROP_PRIVILEGE, itLive } from '../helpers/gate.js';

const BIN = fileURLToPath(new URL('../../bin/natwatch.js', import.meta.url));

const netnsList = () => execFileSync('ip', ['netns', 'list']).toString();
const namesIn = (out: string) => {
  const m = /namespaces (\S+) \(client\) (\S+) \(router\) (\S+) \(server\)/.exec(out);
  return m ? [m[1]!, m[2]!, m[3]!] : [];
};

function lab(args: string[], opts: { interruptOn?: RegExp; signal?: NodeJS.Signals; timeoutMs?: number } = {}) {
  return new Promise<{ code: number | null; out: string }>((resolve) => {
    const child = spawn(process.execPath, [BIN, 'lab', '--prefix', 'nwd', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
    let out = '';
    let sent = false;
    const onData = (d: Buffer) => {
      out += d;
      if (opts.interruptOn && !sent && opts.interruptOn.test(out)) {
        sent = true;
        child.kill(opts.signal ?? 'SIGINT');
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

describe('natwatch lab (CLI)', () => {
  const leftovers: string[] = [];
  afterAll(() => {
    for (const ns of leftovers) spawnSync('ip', ['netns', 'del', ns]);
  });

  it('bad --scenario is a usage error naming the choices', async () => {
    const r = await lab(['--scenario', 'nope']);
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/--scenario: 'nope' is not one of port-exhaustion, table-full, nflog-drop, flush, loss, all/);
  });

  it('--proto/--ipv6 belong to port-exhaustion only', async () => {
    const r = await lab(['--scenario', 'flush', '--ipv6']);
    expect(r.code).toBe(2);
    expect(r.out.trim()).toBe('natwatch: --ipv6: only for --scenario port-exhaustion');
    const p = await lab(['--proto', 'sctp']);
    expect(p.code).toBe(2);
    expect(p.out.trim()).toBe("natwatch: --proto: 'sctp' is not tcp or udp");
  });

  itLive('without root\'s capabilities: one clear line, exit 1', () => {
    const r = spawnSync(DROP_PRIVILEGE[0], [...DROP_PRIVILEGE.slice(1), process.execPath, BIN, 'lab'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toBe('natwatch: lab needs root: it creates network namespaces and nft rules (run it with sudo)');
  });

  itLive('port-exhaustion: the alert, the kernel beside it, exit 0, nothing left behind', async () => {
    const r = await lab(['--scenario', 'port-exhaustion']);
    const names = namesIn(r.out);
    leftovers.push(...names);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/FIRING +nat_port_exhaustion nwd-[0-9a-f]+-r: tcp 198\.51\.100\.1 → 198\.51\.100\.8:80 10\/10 drops \d+/);
    expect(r.out).toMatch(/kernel +│ conntrack -S in R: insert_failed \+\d+/);
    expect(r.out).toMatch(/compare +│ tcp 198\.51\.100\.1 → 198\.51\.100\.8:80: natwatch counts 10 flows, conntrack -L lists 10/);
    expect(r.out).toMatch(/RESOLVED +nat_port_exhaustion/);
    expect(r.out).toMatch(/✓ natwatch raised nat_port_exhaustion .* used=10 capacity=10 critical drops=[1-9]/);
    expect(names).toHaveLength(3);
    for (const ns of names) expect(netnsList()).not.toContain(ns);
  });

  itLive('port-exhaustion over UDP through NAT66', async () => {
    const r = await lab(['--scenario', 'port-exhaustion', '--proto', 'udp', '--ipv6']);
    leftovers.push(...namesIn(r.out));
    expect(r.code, r.out).toBe(0);
    expect(r.out).toMatch(/FIRING +nat_port_exhaustion nwd-[0-9a-f]+-r: udp 2001:db8:2::1 → \[2001:db8:2::8\]:53 10\/10/);
    expect(r.out).toContain('udp 2001:db8:2::1 → [2001:db8:2::8]:53: natwatch counts 10 flows, conntrack -L lists 10');
  });

  itLive('--keep leaves the namespaces and prints how to remove them', async () => {
    const r = await lab(['--scenario', 'nflog-drop', '--keep']);
    const names = namesIn(r.out);
    leftovers.push(...names);
    expect(r.code, r.out).toBe(0);
    expect(r.out).toContain(`ip netns del ${names[0]}; ip netns del ${names[1]}; ip netns del ${names[2]}`);
    for (const ns of names) expect(netnsList()).toContain(ns);
    for (const ns of names) execFileSync('ip', ['netns', 'del', ns]);
  });

  itLive('Ctrl-C in the middle tears everything down and exits 130', async () => {
    const r = await lab(['--scenario', 'port-exhaustion'], { interruptOn: /traffic +│/ });
    const names = namesIn(r.out);
    leftovers.push(...names);
    expect(r.code, r.out).toBe(130);
    expect(r.out).toMatch(/SIGINT: tearing down/);
    expect(names).toHaveLength(3);
    for (const ns of names) expect(netnsList()).not.toContain(ns);
  });
});
