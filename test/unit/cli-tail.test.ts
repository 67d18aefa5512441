// `natwatch tail ws://…` with a non-TTY stdout: one JSON message per line; reconnects with
// since=<last seq> so alerts issued while the server was away are not missed.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ChildProcess } from 'node:child_process';
import { startServer, type StandaloneServer } from '../../src/server/index.js';
import { FakeStreamer } from '../helpers/fake-streamer.js';
import { ensureBuilt, runCli, spawnCli } from '../helpers/cli-build.js';

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

function lines(c: ChildProcess): { msgs: Array<Record<string, unknown>>; until(pred: (m: Array<Record<string, unknown>>) => boolean, ms?: number): Promise<void> } {
  const msgs: Array<Record<string, unknown>> = [];
  let buf = '';
  c.stdout!.on('data', (d: Buffer) => {
    buf += d.toString();
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      msgs.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
      buf = buf.slice(i + 1);
    }
  });
  return {
    msgs,
    async until(pred, ms = 8000) {
      const deadline = Date.now() + ms;
      while (!pred(msgs)) {
        if (Date.now() > deadline) throw new Error(`timed out; got ${JSON.stringify(msgs.map((m) => m.type))}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

describe('natwatch tail (JSON lines)', () => {
  it('prints one message per line and catches up after a reconnect', async () => {
    const streamer = new FakeStreamer();
    srv = await startServer(streamer, { port: 0 });
    const port = srv.address.port;
    child = spawnCli(['tail', `ws://127.0.0.1:${port}`, '--type', 'alert,stats']);
    const out = lines(child);
    await out.until((m) => m.some((x) => x.type === 'hello'));
    const a1 = streamer.emitAlert();
    const s1 = streamer.emitStats();
    await out.until((m) => m.some((x) => x.type === 'stats'));
    expect(out.msgs.filter((m) => m.type === 'alert')).toEqual([a1]);
    expect(out.msgs.find((m) => m.type === 'stats')).toEqual(s1);

    // Server goes away; alerts are issued meanwhile; it comes back on the same port.
    await srv.close();
    const a2 = streamer.emitAlert({ severity: 'warning' });
    const a3 = streamer.emitAlert({ state: 'resolved' });
    srv = await startServer(streamer, { port });
    await out.until((m) => m.filter((x) => x.type === 'hello').length === 2);
    const a4 = streamer.emitAlert();
    await out.until((m) => m.some((x) => x.type === 'alert' && x.seq === a4.seq));
    expect(out.msgs.filter((m) => m.type === 'alert')).toEqual([a1, a2, a3, a4]);
    child.kill('SIGTERM');
    const code = await new Promise((r) => child!.once('exit', (c) => r(c)));
    expect(code).toBe(0);
  });

  it('sends the token; a wrong one is a one-line error, exit 1', async () => {
    const streamer = new FakeStreamer();
    srv = await startServer(streamer, { port: 0, token: 'right' });
    const bad = await runCli(['tail', srv.url, '--token', 'wrong']);
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim().split('\n').filter((l) => !l.includes('connecting')).at(-1)).toMatch(/^natwatch: server refused the token \(401\)/);
    child = spawnCli(['tail', srv.url, '--token', 'right']);
    const out = lines(child);
    await out.until((m) => m.some((x) => x.type === 'hello'));
  });

  it('tail --json | head: a closed stdout ends it quietly (exit 0, nothing on stderr)', async () => {
    const streamer = new FakeStreamer();
    srv = await startServer(streamer, { port: 0 });
    child = spawnCli(['tail', srv.url, '--json']);
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    // `head -1`: read one line, then close the pipe.
    await new Promise<void>((resolve) => child!.stdout!.once('data', () => resolve()));
    child.stdout!.destroy();
    const exit = new Promise<number | null>((r) => child!.once('exit', (c) => r(c)));
    // Bounded: keep writing until tail notices the closed pipe.
    for (let i = 0; i < 50 && child.exitCode === null; i++) {
      streamer.emitAlert();
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await exit).toBe(0);
    expect(stderr.split('\n').filter((l) => l && !/connecting|connected/.test(l))).toEqual([]);
  });

  it.each([
    [['tail', 'http://127.0.0.1:1'], 'not a ws://'],
    [['tail', 'ws://['], 'not a ws://'],
    [['tail', 'ws://127.0.0.1:1', '--type', 'alert,bogus'], '--type'],
    [['tail', 'ws://127.0.0.1:1', '--netns', 'x'], '--netns'],
    [['tail', '--bogus'], '--bogus'],
  ])('%j → exit 2 naming %s', async (args, what) => {
    const r = await runCli(args);
    expect(r.code).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toContain(what);
  });
});
