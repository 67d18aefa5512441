// End to end: event_loss. natwatch's event socket gets an 8 KiB receive buffer and a burst of
// 2000 UDP flows overflows it. `natwatch serve` has no setting for the buffer size, so this
// runs the library's streamer (createStreamer({ rcvbufBytes })) behind the library's real
// WebSocket server (startServer) and checks the stream as a client sees it.
import { afterEach, describe, expect, it } from 'vitest';
import { createStreamer, startServer, type StandaloneServer, type Streamer } from '../../src/index.js';
import type { Alert, ServerMessage, StatsMessage } from '../../src/types.js';
import { createLab, type Lab } from '../../src/lab/topology.js';
import { LOSS_RCVBUF, loss, lossFlows, netlinkDrops } from '../../src/lab/scenarios/loss.js';
import { LAB_THRESHOLDS } from '../../src/lab/runner.js';
import type { Load } from '../../src/lab/scenarios/types.js';
import { connectStream, type StreamClient } from '../helpers/ws-client.js';

const isRoot = process.getuid?.() === 0;
const WAIT = 15_000;
const lossAlert = (m: ServerMessage): m is Alert => m.type === 'alert' && m.kind === 'event_loss';
const KEY = { proto: 'udp', natIp: '198.51.100.1', dstIp: '198.51.100.8', dstPort: 53 };

describe.runIf(isRoot)('e2e event_loss', () => {
  let lab: Lab | undefined;
  let load: Load | undefined;
  let streamer: Streamer | undefined;
  let server: StandaloneServer | undefined;
  let ws: StreamClient | undefined;
  afterEach(async () => {
    await load?.release();
    await ws?.close();
    await server?.close();
    await new Promise<void>((r) => (server ? server.server.close(() => r()) : r()));
    await streamer?.close();
    await lab?.destroy();
    lab = load = streamer = server = ws = undefined;
  });

  it('a listener slower than the kernel: event_loss with counts, state rebuilt from a dump, resolved', async () => {
    const sc = loss();
    lab = await createLab({ prefix: 'nwd' });
    await sc.setup(lab);
    streamer = createStreamer({ netns: lab.nsPath(lab.router), rcvbufBytes: LOSS_RCVBUF, thresholds: LAB_THRESHOLDS });
    await streamer.start();
    server = await startServer(streamer, { host: '127.0.0.1', port: 0 });
    ws = await connectStream(server.url);
    await ws.waitFor((m) => m.type === 'hello', 5_000, 'hello');

    load = await sc.trigger(lab);
    expect(load.ok).toBeGreaterThanOrEqual(1900);
    const fired = await ws.waitFor<Alert>((m) => lossAlert(m) && m.state === 'firing', WAIT, 'event_loss firing');
    expect(fired).toMatchObject({ kind: 'event_loss', severity: 'critical', key: {}, used: null, capacity: null, utilization: null });
    expect(fired.drops).toBeGreaterThan(0);
    const detail = fired.detail as { conntrack: { enobufs: number; dropped: number } };
    expect(detail.conntrack.enobufs + detail.conntrack.dropped).toBeGreaterThan(0);

    // Settled: the last event_loss is `resolved` (a clean re-dump) and nothing new for 1.5 s.
    const deadline = Date.now() + WAIT;
    let settled: Alert | undefined;
    while (Date.now() < deadline && !settled) {
      const last = ws.alerts().filter((a) => a.kind === 'event_loss').at(-1);
      if (last?.state === 'resolved' && Date.now() - Date.parse(last.ts) >= 1_500) settled = last;
      else await new Promise((r) => setTimeout(r, 200));
    }
    expect(settled, `event_loss never settled resolved: ${JSON.stringify(ws.alerts().slice(-3))}`).toBeDefined();
    expect(settled!.message).toMatch(/dump/);

    // The kernel's own ground truth: its Drops for netfilter sockets in R cover what natwatch lost.
    const kernelDrops = [...(await netlinkDrops(lab, lab.router)).values()].reduce((a, b) => a + b, 0);
    const lost = streamer.totals().eventsLost.conntrack;
    expect(lost).toBeGreaterThan(0);
    expect(kernelDrops).toBeGreaterThanOrEqual(lost);
    const metrics = await (await fetch(server.url.replace(/^ws/, 'http').replace('/v1/stream', '/metrics'))).text();
    expect(metrics).toMatch(new RegExp(`natwatch_events_lost_total\\{source="conntrack"\\} ${lost}\\b`));

    // Rebuilt from the dump: natwatch's occupancy equals conntrack -L, flow for flow.
    const kernel = await lossFlows(lab);
    expect(kernel).toBe(load.ok);
    const stats = await ws.waitFor<StatsMessage>(
      (m) => m.type === 'stats' && Date.parse(m.ts) > Date.parse(settled!.ts) && m.top.some((t) => JSON.stringify(t.key) === JSON.stringify(KEY)),
      WAIT,
      'stats after the re-dump',
    );
    expect(stats.top.find((t) => JSON.stringify(t.key) === JSON.stringify(KEY))!.used).toBe(kernel);
    console.log(`loss: kernel Drops ${kernelDrops}, natwatch lost ${lost} (${JSON.stringify(detail)}), occupancy ${kernel}`);
  });
});
