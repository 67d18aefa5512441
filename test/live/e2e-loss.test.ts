// End to end: event_loss. natwatch's event socket gets an 8 KiB receive buffer and a burst of
// 2000 UDP flows overflows it. The streamer runs in this process (createStreamer({ rcvbufBytes })
// behind the library's real WebSocket server, startServer) so the test can find natwatch's own
// netlink sockets among its fds and compare their kernel drop counts with the alert, and it
// checks the stream as a client sees it.
import { readdirSync, readlinkSync } from 'node:fs';
import { afterEach, expect, it } from 'vitest';
import { createStreamer, startServer, type StandaloneServer, type Streamer } from '../../src/index.js';
import type { Alert, ServerMessage, StatsMessage } from '../../src/types.js';
import { createLab, type Lab } from '../../src/lab/topology.js';
import { LOSS_RCVBUF, loss, lossFlows, netlinkSockets, type NetlinkSocket } from '../../src/lab/scenarios/loss.js';
import { snapshot } from '../../src/lab/scenarios/kernel.js';
import { LAB_THRESHOLDS } from '../../src/lab/runner.js';
import type { Load } from '../../src/lab/scenarios/types.js';
import { connectStream, type StreamClient } from '../helpers/ws-client.js';
import { describeLive } from '../helpers/gate.js';

const WAIT = 15_000;
const lossAlert = (m: ServerMessage): m is Alert => m.type === 'alert' && m.kind === 'event_loss';
const KEY = { proto: 'udp', natIp: '198.51.100.1', dstIp: '198.51.100.8', dstPort: 53 };
/**
 * NFNLGRP_CONNTRACK_NEW and _DESTROY (groups 1 and 3, linux/netfilter/nfnetlink.h) as Groups
 * bits: serve joins UPDATE (group 2) only while someone wants events, and nobody does here.
 */
const CT_GROUPS = 0b101;

/** Inodes of this process's sockets: the addon's sockets live here, whatever namespace they are in. */
function ownSocketInodes(): Set<number> {
  const out = new Set<number>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (m) out.add(Number(m[1]));
    } catch {
      // closed meanwhile (readdir's own fd)
    }
  }
  return out;
}

describeLive('e2e event_loss', () => {
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

  it('a listener slower than the kernel: one event_loss episode with the kernel\'s count, state rebuilt from a dump, resolved', async () => {
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
    const detail = fired.detail as { conntrack: { enobufs: number; kernelDrops: number; dropped: number; lost: number } };
    expect(detail.conntrack.kernelDrops).toBeGreaterThan(0);
    expect(fired.drops).toBe(detail.conntrack.lost);

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

    // The kernel's own ground truth, /proc/net/netlink in R: natwatch's event socket is ours (its
    // inode is among this process's fds) and subscribed to the conntrack groups. natwatch's lost
    // events equal its Drops exactly (plus records it dropped itself in its queue, which the
    // kernel delivered). Both counters only grow: poll briefly so that a batch in flight lands.
    const ours = ownSocketInodes();
    const episodes = ws.alerts().filter((a) => a.kind === 'event_loss' && a.state === 'resolved');
    const inQueue = episodes.reduce((a, x) => a + (x.detail as typeof detail).conntrack.dropped, 0);
    let all: NetlinkSocket[] = [];
    let ev: NetlinkSocket | undefined;
    let lost = -1;
    for (const end = Date.now() + 3_000; Date.now() < end; await new Promise((r) => setTimeout(r, 100))) {
      all = await netlinkSockets(lab, lab.router);
      const mine = all.filter((x) => ours.has(x.inode) && (x.groups & CT_GROUPS) === CT_GROUPS);
      expect(mine, JSON.stringify(all)).toHaveLength(1);
      ev = mine[0]!;
      lost = streamer.totals().eventsLost.conntrack;
      if (lost === ev.drops + inQueue) break;
    }
    const kernelDrops = ev!.drops;
    expect(kernelDrops).toBeGreaterThan(0);
    expect(lost).toBe(kernelDrops + inQueue);
    // No other netfilter socket in R lost anything: the namespace-wide Drops are natwatch's.
    expect(all.reduce((a, x) => a + x.drops, 0)).toBe(kernelDrops);
    // The alerts say the same: one overload is one episode (one firing, re-sent as it grew, one
    // resolved) whose total is natwatch's lost count, and the first alert already counts
    // thousands of events, not a handful of ENOBUFS returns.
    expect(episodes, JSON.stringify(ws.alerts().filter((a) => a.kind === 'event_loss').map((a) => [a.state, a.drops]))).toHaveLength(1);
    expect(episodes[0]!.drops).toBe(lost);
    expect(ws.alerts().filter((a) => a.kind === 'event_loss' && a.state === 'firing' && a.seq < episodes[0]!.seq).every((a) => a.seq >= fired.seq)).toBe(true);
    expect(fired.drops).toBeGreaterThan(detail.conntrack.enobufs);
    const metrics = await (await fetch(server.url.replace(/^ws/, 'http').replace('/v1/stream', '/metrics'))).text();
    // A watched namespace adds its name as the netns label.
    expect(metrics).toMatch(new RegExp(`natwatch_events_lost_total\\{source="conntrack",netns="${lab.router}"\\} ${lost}\\b`));

    // Rebuilt from the dump: natwatch's occupancy equals conntrack -L, flow for flow, and the
    // flows it tracks equal the kernel's entry count (conntrack -C).
    // Every answered flow is in R's table; one whose echo was lost on a busy machine is too.
    const kernel = await lossFlows(lab);
    expect(kernel).toBeGreaterThanOrEqual(load.ok);
    const stats = await ws.waitFor<StatsMessage>(
      (m) => m.type === 'stats' && Date.parse(m.ts) > Date.parse(settled!.ts) && m.top.some((t) => JSON.stringify(t.key) === JSON.stringify(KEY)),
      WAIT,
      'stats after the re-dump',
    );
    expect(stats.top.find((t) => JSON.stringify(t.key) === JSON.stringify(KEY))!.used).toBe(kernel);
    const count = (await snapshot(lab, lab.router)).count;
    expect(streamer.tracker.liveFlows).toBe(count);
    console.log(
      `loss: kernel Drops ${kernelDrops} (socket ${ev!.portId}), natwatch lost ${lost} (${inQueue} in its queue; first alert ${JSON.stringify(detail)}), ` +
        `${episodes.length} episode(s), occupancy ${kernel}, tracked ${streamer.tracker.liveFlows} = conntrack -C ${count}`,
    );
  });
});
