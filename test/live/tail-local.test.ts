// `natwatch tail --netns` without a URL runs the streamer in-process: JSON lines of stats,
// events and the port-exhaustion alert from real traffic through a lab router.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { ADDR, type Lab } from '../../src/lab/topology.js';
import { holdConnect } from '../../src/lab/scenarios/traffic.js';
import type { Load } from '../../src/lab/scenarios/types.js';
import { ensureBuilt, spawnCli } from '../helpers/cli-build.js';
import { natLab } from '../helpers/nat-lab.js';
import { describeLive } from '../helpers/gate.js';

describeLive('natwatch tail in-process (root: lab namespaces)', () => {
  let lab: Lab;
  let tail: ChildProcess | null = null;
  const loads: Load[] = [];
  beforeAll(async () => {
    ensureBuilt();
    lab = await natLab('nwc');
  }, 180_000);
  afterAll(async () => {
    if (tail && tail.exitCode === null) tail.kill('SIGKILL');
    for (const l of loads) await l.release();
    await lab?.destroy();
  });

  it('prints stats, events and the alert as JSON lines; SIGINT exits 0', async () => {
    tail = spawnCli(['tail', '--netns', lab.router, '--json', '--type', 'alert,stats,event']);
    const msgs: Array<Record<string, unknown>> = [];
    let buf = '';
    let err = '';
    tail.stderr!.on('data', (d: Buffer) => (err += d));
    tail.stdout!.on('data', (d: Buffer) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        msgs.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
        buf = buf.slice(i + 1);
      }
    });
    const until = async (pred: () => boolean, ms: number, what: string): Promise<void> => {
      const deadline = Date.now() + ms;
      while (!pred()) {
        if (Date.now() > deadline || tail!.exitCode !== null) throw new Error(`no ${what}; stderr: ${err}; got ${JSON.stringify(msgs.map((m) => m.type))}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    await until(() => msgs.some((m) => m.type === 'stats'), 10_000, 'stats');
    const load = await holdConnect(lab, lab.client, { proto: 'tcp', to: `${ADDR.server}:80`, count: 15, timeoutMs: 2000, holdMs: 60_000 });
    loads.push(load);
    await until(() => msgs.some((m) => m.type === 'alert' && m.kind === 'nat_port_exhaustion'), 15_000, 'alert');
    const news = msgs.filter((m) => m.type === 'event' && m.source === 'conntrack' && m.event === 'new' && (m.orig as { dst: string }).dst === ADDR.server);
    expect(news.length).toBeGreaterThanOrEqual(10);
    expect(msgs.find((m) => m.type === 'alert')).toMatchObject({ key: { natIp: ADDR.routerOut, dstIp: ADDR.server, dstPort: 80 }, used: 10, capacity: 10 });
    tail.kill('SIGINT');
    const code = await new Promise((r) => (tail!.exitCode !== null ? r(tail!.exitCode) : tail!.once('exit', (c) => r(c))));
    expect(code).toBe(0);
  });
});
