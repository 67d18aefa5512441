// `natwatch tail ws://… --format ecs --dst … --severity …`: ECS documents, one per line, host
// and namespace taken from the server's hello, filters applied as the server would.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { startServer, type StandaloneServer } from '../../src/server/index.js';
import { FakeStreamer } from '../helpers/fake-streamer.js';
import { ensureBuilt, spawnCli } from '../helpers/cli-build.js';
import { ecsProblems } from '../helpers/ecs-validate.js';

beforeAll(() => {
  process.env.NATWATCH_LOG_LEVEL ??= 'silent';
  ensureBuilt();
}, 180_000);

let child: ChildProcess | null = null;
let srv: StandaloneServer | null = null;
afterEach(async () => {
  if (child && child.exitCode === null) child.kill('SIGKILL');
  child = null;
  await srv?.close();
  srv = null;
});

describe('natwatch tail --format ecs', () => {
  it('documents from a server, filtered by --dst and --severity', async () => {
    const streamer = new FakeStreamer({ netns: '/var/run/netns/gw-a' });
    srv = await startServer(streamer, { port: 0 });
    child = spawnCli(['tail', `ws://127.0.0.1:${srv.address.port}`, '--type', 'alert,event', '--format', 'ecs', '--dst', '198.51.100.8:80', '--severity', 'critical']);
    const docs: Array<Record<string, any>> = [];
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        docs.push(JSON.parse(buf.slice(0, i)) as Record<string, any>);
        buf = buf.slice(i + 1);
      }
    });
    const until = async (pred: () => boolean): Promise<void> => {
      const end = Date.now() + 8000;
      while (!pred()) {
        if (Date.now() > end) throw new Error(`timed out; got ${JSON.stringify(docs.map((d) => d.event))}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    await until(() => docs.length >= 1);
    await new Promise((r) => setTimeout(r, 300)); // the client has subscribed
    streamer.emitAlert({ severity: 'warning' }); // below --severity
    streamer.emitAlert({ severity: 'critical', key: { proto: 'tcp', natIp: '198.51.100.1', dstIp: '198.51.100.9', dstPort: 80 } }); // other --dst
    const shown = streamer.emitAlert({ severity: 'critical' });
    streamer.emitEvent({ orig: { src: '192.0.2.5', dst: '198.51.100.9', sport: 1, dport: 80 } }); // other --dst
    streamer.emitEvent();
    await until(() => docs.some((d) => d.event.dataset === 'natwatch.conntrack'));
    expect(docs[0]).toMatchObject({ event: { dataset: 'natwatch.control', action: 'hello' }, natwatch: { netns: 'gw-a' } });
    const alerts = docs.filter((d) => d.event.kind === 'alert');
    expect(alerts.map((d) => d.natwatch.seq)).toEqual([shown.seq]);
    expect(docs.filter((d) => d.event.dataset === 'natwatch.conntrack').map((d) => d.destination)).toEqual([{ ip: '198.51.100.8', port: 80 }]);
    for (const d of docs) expect(ecsProblems(d)).toEqual([]);
  });
});
