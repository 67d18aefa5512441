// End to end: real namespaces and NAT rules, the built `natwatch serve` on the router, a real
// WebSocket client. Asserts the nat_port_exhaustion alert of docs/protocol.md field by field, and that it
// resolves once the client lets go. Needs root and a built dist (npm run build).
import { afterEach, expect, it } from 'vitest';
import type { Alert, ServerMessage, StatsMessage } from '../../src/types.js';
import { ADDR, createLab, type Lab } from '../../src/lab/topology.js';
import { fastClose, portExhaustion } from '../../src/lab/scenarios/port-exhaustion.js';
import { deltas, listEntries, pollUntil, reapWhile, snapshot } from '../../src/lab/scenarios/kernel.js';
import { holdConnect } from '../../src/lab/scenarios/traffic.js';
import type { Load } from '../../src/lab/scenarios/types.js';
import { watchRouter } from '../helpers/serve.js';
import { describeLive } from '../helpers/gate.js';

const WAIT = 15_000;

const isAlert = (m: ServerMessage): m is Alert => m.type === 'alert';
const exhaustion = (natIp: string, dstIp: string, dstPort: number, proto: string) => (m: ServerMessage) =>
  isAlert(m) &&
  m.kind === 'nat_port_exhaustion' &&
  JSON.stringify(m.key) === JSON.stringify({ proto, natIp, dstIp, dstPort });

describeLive('e2e nat_port_exhaustion', () => {
  let lab: Lab | undefined;
  let load: Load | undefined;
  let watcher: Awaited<ReturnType<typeof watchRouter>> | undefined;
  afterEach(async () => {
    await load?.release();
    await watcher?.stop();
    await lab?.destroy();
    lab = load = watcher = undefined;
  });

  for (const v of [
    { proto: 'tcp' as const, ipv6: false, natIp: ADDR.routerOut, dstIp: ADDR.server, dstPort: 80 },
    { proto: 'udp' as const, ipv6: false, natIp: ADDR.routerOut, dstIp: ADDR.server, dstPort: 53 },
    { proto: 'tcp' as const, ipv6: true, natIp: ADDR.routerOut6, dstIp: ADDR.server6, dstPort: 80 },
  ]) {
    it(`${v.proto}${v.ipv6 ? ' over NAT66' : ''}: 10/10 critical with kernel drops, then resolved`, async () => {
      const sc = portExhaustion({ proto: v.proto, ipv6: v.ipv6 });
      lab = await createLab({ prefix: 'nwd', ipv6: v.ipv6 });
      await sc.setup(lab);
      // No --nat-ports: natwatch reads the range (and the NAT address) from R's ruleset.
      watcher = await watchRouter(lab.nsPath(lab.router), {});
      const before = await snapshot(lab, lab.router);
      load = await sc.trigger(lab);
      expect({ ok: load.ok, failed: load.failed }).toEqual({ ok: 10, failed: 5 });

      const key = exhaustion(v.natIp, v.dstIp, v.dstPort, v.proto);
      const fired = await watcher.ws.waitFor<Alert>(
        (m) => key(m) && (m as Alert).state === 'firing' && (m as Alert).severity === 'critical' && (m as Alert).drops > 0,
        WAIT,
        'critical nat_port_exhaustion with drops',
      );
      expect(fired).toMatchObject({
        type: 'alert',
        kind: 'nat_port_exhaustion',
        severity: 'critical',
        state: 'firing',
        key: { proto: v.proto, natIp: v.natIp, dstIp: v.dstIp, dstPort: v.dstPort },
        used: 10,
        capacity: 10,
        utilization: 1,
      });
      expect(fired.ts).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(fired.message).toContain(v.ipv6 ? `[${v.dstIp}]:${v.dstPort}` : `${v.dstIp}:${v.dstPort}`);
      // The kernel's own count: natwatch's drops cannot exceed what conntrack -S says.
      const k = deltas(before, await snapshot(lab, lab.router));
      expect(k.insert_failed ?? 0).toBeGreaterThan(0);
      expect(fired.drops).toBeLessThanOrEqual(Math.max(k.insert_failed ?? 0, k.drop ?? 0));

      const t0 = Date.now();
      await load.release();
      // Expired entries leave R's table on the next GC pass or dump; a dump makes it prompt.
      const resolved = await reapWhile(lab, lab.router, watcher.ws.waitFor<Alert>((m) => key(m) && (m as Alert).state === 'resolved', WAIT, 'resolved'));
      console.log(`${v.proto}${v.ipv6 ? '6' : ''}: resolved after ${Date.now() - t0} ms; alerts: ${watcher.ws.alerts().map((a) => `${a.ts.slice(17)} ${a.state} ${a.severity} ${a.used}/${a.capacity} drops ${a.drops}`).join(' | ')}`);
      expect(resolved.seq).toBeGreaterThan(fired.seq);
      expect(resolved.key).toEqual(fired.key);
      // Alerts only ever go firing → resolved for this key, seq strictly increasing.
      const seqs = watcher.ws.alerts().map((a) => a.seq);
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
      expect(new Set(seqs).size).toBe(seqs.length);
    });
  }

  it('a streamer started after the ports were used up alerts from the table dump alone', async () => {
    const sc = portExhaustion();
    lab = await createLab({ prefix: 'nwd' });
    await sc.setup(lab);
    load = await sc.trigger(lab); // 10 held, 5 retransmitting SYNs
    watcher = await watchRouter(lab.nsPath(lab.router), sc.watch);
    const key = exhaustion(ADDR.routerOut, ADDR.server, 80, 'tcp');
    const fired = await watcher.ws.waitFor<Alert>(
      (m) => key(m) && (m as Alert).state === 'firing' && (m as Alert).severity === 'critical',
      WAIT,
      'nat_port_exhaustion from the dump',
    );
    expect(fired).toMatchObject({ used: 10, capacity: 10, utilization: 1 });
    // The hung clients keep retrying: the kernel keeps dropping, natwatch attributes it.
    const withDrops = await watcher.ws.waitFor<Alert>((m) => key(m) && (m as Alert).drops > 0, WAIT, 'drops > 0');
    expect(withDrops.state).toBe('firing');
  });

  it('a busy NAT spread over many destinations, each well under capacity, raises no exhaustion alert', async () => {
    const sc = portExhaustion({ ports: [50000, 50009] });
    lab = await createLab({ prefix: 'nwd' });
    await sc.setup(lab); // also serves :80
    await lab.exec(lab.server, 'ip', ['addr', 'add', '198.51.100.9/24', 'dev', 'eth0']);
    for (const port of [81, 82, 83]) await lab.spawnPeer(lab.server, ['serve', '--proto', 'tcp', '--port', String(port)]).ready;
    watcher = await watchRouter(lab.nsPath(lab.router), sc.watch);
    const dests = ['198.51.100.8', '198.51.100.9'].flatMap((ip) => [80, 81, 82, 83].map((port) => ({ ip, port })));
    const loads: Load[] = [];
    try {
      for (const d of dests) {
        loads.push(await holdConnect(lab, lab.client, { proto: 'tcp', to: `${d.ip}:${d.port}`, count: 5 }));
      }
      // 40 flows through a 10-port range: fine, because capacity is per destination.
      expect(loads.reduce((n, l) => n + l.ok, 0)).toBe(40);
      const stats = await watcher.ws.waitFor<StatsMessage>(
        (m) => m.type === 'stats' && m.top.length >= 8 && m.top.every((e) => e.used === 5),
        WAIT,
        'stats.top with 8 destinations at 5/10',
      );
      for (const e of stats.top) expect(e).toMatchObject({ used: 5, capacity: 10, utilization: 0.5 });
      await new Promise((r) => setTimeout(r, 2_000));
      expect(watcher.ws.alerts().filter((a) => a.kind === 'nat_port_exhaustion')).toEqual([]);
    } finally {
      for (const l of loads) await l.release();
    }
  });

  it('two SNAT addresses: each source is pinned to one, which exhausts while the other is idle', async () => {
    lab = await createLab({ prefix: 'nwd' });
    const l = lab;
    await fastClose(l, l.router);
    await l.exec(l.router, 'ip', ['addr', 'add', '198.51.100.2/24', 'dev', 'r-out']);
    await l.nft(
      l.router,
      'table ip nwlab_nat {\n  chain post {\n    type nat hook postrouting priority 100;\n' +
        '    oifname "r-out" meta l4proto tcp snat to 198.51.100.1-198.51.100.2:50000-50009\n  }\n}\n',
    );
    await l.spawnPeer(l.server, ['serve', '--proto', 'tcp', '--port', '80']).ready;
    await l.spawnPeer(l.server, ['serve', '--proto', 'tcp', '--port', '81']).ready;
    // Find a client source for each NAT address: probe to :81 (same address choice, other key).
    const pinned = new Map<string, string>();
    for (let i = 5; i < 21 && pinned.size < 2; i++) {
      const src = `192.0.2.${i}`;
      if (i > 5) await l.exec(l.client, 'ip', ['addr', 'add', `${src}/24`, 'dev', 'eth0']);
      await l.runPeer(l.client, ['connect', '--proto', 'tcp', '--to', '198.51.100.8:81', '--from', src]);
      const e = (await listEntries(l, l.router, ['-p', 'tcp', '--dport', '81'])).find((x) => x.orig.src === src);
      if (e && !pinned.has(e.reply.dst)) pinned.set(e.reply.dst, src);
    }
    expect([...pinned.keys()].sort(), 'no two client sources hashed to different SNAT addresses').toEqual(['198.51.100.1', '198.51.100.2']);
    await pollUntil(async () => (await listEntries(l, l.router, ['-p', 'tcp', '--dport', '81'])).length === 0, 10_000);

    watcher = await watchRouter(l.nsPath(l.router), {});
    const [hot, cold] = ['198.51.100.1', '198.51.100.2'];
    load = await holdConnect(l, l.client, { proto: 'tcp', to: '198.51.100.8:80', count: 15, extra: ['--from', pinned.get(hot!)!] });
    const idle = await holdConnect(l, l.client, { proto: 'tcp', to: '198.51.100.8:80', count: 5, extra: ['--from', pinned.get(cold!)!] });
    try {
      expect({ ok: load.ok, failed: load.failed }).toEqual({ ok: 10, failed: 5 });
      expect(idle.ok).toBe(5);
      const fired = await watcher.ws.waitFor<Alert>(
        (m) => exhaustion(hot!, '198.51.100.8', 80, 'tcp')(m) && (m as Alert).severity === 'critical',
        WAIT,
        `exhaustion of ${hot}`,
      );
      expect(fired).toMatchObject({ used: 10, capacity: 10 });
      const stats = await watcher.ws.waitFor<StatsMessage>(
        (m) => m.type === 'stats' && m.top.some((e) => e.key.natIp === cold && e.used === 5),
        WAIT,
        `top entry for ${cold}`,
      );
      expect(stats.top.find((e) => e.key.natIp === cold)).toMatchObject({ used: 5, capacity: 10 });
      expect(watcher.ws.alerts().filter((a) => a.kind === 'nat_port_exhaustion' && (a.key as { natIp?: string }).natIp === cold)).toEqual([]);
    } finally {
      await idle.release();
    }
  });
});
