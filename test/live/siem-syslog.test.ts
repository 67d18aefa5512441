// The docs/siem.md recipe, tried: `natwatch tail --format ecs | logger --tcp ...` (util-linux
// logger as the stdin shipper) into a local TCP listener standing in for a SIEM's syslog
// input, through a lab NAT exhaustion. Each received line is RFC 5424 with an ECS document as
// its message; firing and resolved share event.id.
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server, type AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterEach, expect, it } from 'vitest';
import { LAB_TOOLS, describeLive } from '../helpers/gate.js';
import { ADDR, type Lab } from '../../src/lab/topology.js';
import { reapWhile } from '../../src/lab/scenarios/kernel.js';
import { fastClose } from '../../src/lab/scenarios/port-exhaustion.js';
import { holdConnect } from '../../src/lab/scenarios/traffic.js';
import type { Load } from '../../src/lab/scenarios/types.js';
import { natLab } from '../helpers/nat-lab.js';
import { until } from '../helpers/wait.js';
import { ecsProblems } from '../helpers/ecs-validate.js';

const BIN = fileURLToPath(new URL('../../bin/natwatch.js', import.meta.url));

describeLive('SIEM recipe: tail --format ecs | logger --tcp', () => {
  let lab: Lab | undefined;
  let load: Load | undefined;
  let sh: ChildProcess | undefined;
  let srv: Server | undefined;
  afterEach(async () => {
    if (sh?.pid && sh.exitCode === null) process.kill(-sh.pid, 'SIGINT');
    await load?.release();
    await lab?.destroy();
    await new Promise<void>((r) => (srv ? srv.close(() => r()) : r()));
    lab = load = sh = srv = undefined;
  });

  it('the SIEM side receives one RFC 5424 line per alert document, firing then resolved, one event.id', async () => {
    const lines: string[] = [];
    srv = createServer((s) => {
      let buf = '';
      s.on('data', (d) => {
        buf += d;
        for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
          lines.push(buf.slice(0, i));
          buf = buf.slice(i + 1);
        }
      });
    });
    await new Promise<void>((r) => srv!.listen(0, '127.0.0.1', () => r()));
    const port = (srv.address() as AddressInfo).port;
    lab = await natLab('nws');
    await fastClose(lab, lab.router);
    const cmd = `"${process.execPath}" "${BIN}" tail --netns ${lab.router} --format ecs --type alert | logger --tcp --server 127.0.0.1 --port ${port} --rfc5424=notq --size 65536 --tag natwatch`;
    // Its own process group, so the whole pipeline is stopped by this PID.
    sh = spawn('sh', ['-c', cmd], { stdio: 'ignore', detached: true });
    await new Promise((r) => setTimeout(r, 2000));
    load = await holdConnect(lab, lab.client, { proto: 'tcp', to: `${ADDR.server}:80`, count: 15, timeoutMs: 2000, holdMs: 60_000 });
    await until('the firing alert at the receiver', () => lines.some((l) => l.includes('"state":"firing"')), 15_000);
    await load.release();
    await reapWhile(lab, lab.router, until('the resolved alert at the receiver', () => lines.some((l) => l.includes('"state":"resolved"')), 30_000));
    const docs = lines.map((l) => {
      const m = /^<\d+>1 \S+ \S+ natwatch - - - (\{.*\})$/.exec(l);
      expect(m, l).not.toBeNull();
      return JSON.parse(m![1]!) as { event: { id: string; type: string[] }; natwatch: { state: string } };
    });
    for (const d of docs) expect(ecsProblems(d as never)).toEqual([]);
    expect(docs[0]!.event.type).toEqual(['start']);
    expect(docs.at(-1)!.event.type).toEqual(['end']);
    expect(new Set(docs.map((d) => d.event.id)).size).toBe(1);
  });
}, { tools: [...LAB_TOOLS, 'logger'] });
