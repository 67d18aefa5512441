// The native source trusts only the kernel: a datagram another process writes to one of its
// netlink sockets is dropped and counted, and a datagram the kernel had to truncate counts as
// lost events (loss, so the consumer re-dumps), never as a silent decode error.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ADDR, createLab, type Lab } from '../../src/lab/topology.js';
import { createNetlinkSource, type NetlinkSource } from '../../src/source/netlink-source.js';
import { CtKind, type LossReport, type SourceHandlers } from '../../src/source/types.js';
import { createStreamer } from '../../src/streamer.js';
import type { Alert } from '../../src/types.js';
import { readFixture } from '../fixtures/fixtures.js';
import { forgeTo, ownNetfilterSockets } from '../helpers/netlink-forge.js';
import { describeLive } from '../helpers/gate.js';
import { until } from '../helpers/wait.js';

const NFNLGRP_CONNTRACK_NEW = 1; // linux/netfilter/nfnetlink.h

function collector() {
  const seen = { ids: [] as number[], events: 0, loss: [] as LossReport[], errors: [] as Error[], dumpEnds: 0 };
  const handlers: SourceHandlers = {
    conntrack(v) {
      for (let i = 0; i < v.count; i++) {
        v.seek(i);
        if (v.kind !== CtKind.Dump) seen.events++;
        seen.ids.push(v.id);
      }
    },
    nflog() {},
    loss: (r) => seen.loss.push(r),
    dumpBegin() {},
    dumpEnd: () => seen.dumpEnds++,
    error: (e) => seen.errors.push(e),
  };
  return { seen, handlers };
}

describeLive('native source trusts only the kernel (root: namespaces, traffic)', () => {
  let lab: Lab;
  const sources: NetlinkSource[] = [];
  const open = (o: Parameters<typeof createNetlinkSource>[0]) => {
    const s = createNetlinkSource(o);
    sources.push(s);
    return s;
  };

  beforeAll(async () => {
    lab = await createLab({ prefix: 'nwt' });
    await lab.nft(lab.router, 'table ip nat { chain post { type nat hook postrouting priority 100; oifname "r-out" masquerade; }; }');
    await lab.spawnPeer(lab.server, ['serve', '--proto', 'udp', '--port', '5353']).ready;
  });
  afterAll(async () => {
    for (const s of sources) await s.close();
    await lab?.destroy();
  });

  it('drops and counts a forged conntrack event sent to each of its sockets by another process', async () => {
    const { seen, handlers } = collector();
    const src = open({ netns: lab.nsPath(lab.router), nflogGroups: [17] });
    await src.start(handlers);
    await until('initial dump', () => seen.dumpEnds > 0);
    const mine = await ownNetfilterSockets(lab, lab.router);
    // conntrack events, dump, stats, NFLOG: four sockets, one of them in the NEW group.
    expect(mine.length).toBe(4);
    expect(mine.filter((s) => s.groups & (1 << (NFNLGRP_CONNTRACK_NEW - 1))).length).toBe(1);

    // A well-formed NEW event (captured from the kernel) with a recognisable CTA_ID.
    const forged = Buffer.from(readFixture('ct-new-tcp-snat').bytes);
    const idAt = forged.indexOf(Buffer.from([0x08, 0x00, 0x0c, 0x00])) + 4;
    forged.writeUInt32BE(0x0badf00d, idAt);
    const forger = await forgeTo(lab, lab.router, mine.map((s) => s.portId), forged);
    expect(forger).toBeGreaterThan(0);
    await src.readCounters(); // the stats socket reads (and skips) its forged datagram here
    await until('forged datagrams counted', () => src.stats.foreign >= 4);
    expect(src.stats.foreign).toBe(4);
    expect(seen.ids).not.toContain(0x0badf00d);
    expect(seen.loss).toEqual([]);
    expect(seen.errors.map((e) => e.message)).toEqual([
      expect.stringMatching(/^ignored \d netlink message\(s\) sent to natwatch's sockets by a process other than the kernel$/),
    ]);

    // Still reading the kernel: a real flow arrives.
    const before = seen.events;
    await lab.runPeer(lab.client, ['connect', '--proto', 'udp', '--to', `${ADDR.server}:5353`, '--count', '1']);
    await until('a real event after the forgery', () => seen.events > before);
    await src.close();
  });

  it('counts events the kernel truncated (MSG_TRUNC) as lost, not as decode errors', async () => {
    const { seen, handlers } = collector();
    // A 64-byte slot: every conntrack event (≈ 150-300 bytes) arrives cut off.
    const src = open({ netns: lab.nsPath(lab.router), dump: false, slotBytes: 64 });
    await src.start(handlers);
    const r = await lab.runPeer(lab.client, ['connect', '--proto', 'udp', '--to', `${ADDR.server}:5353`, '--count', '5']);
    expect(r.ok).toBe(5);
    const lost = () => seen.loss.reduce((a, l) => a + l.dropped, 0);
    // Each flow's NEW at least (UPDATE is not subscribed).
    await until('truncated events reported as loss', () => lost() >= 5);
    expect(seen.events).toBe(0);
    expect(seen.loss.every((l) => l.source === 'conntrack' && l.kernelDrops === 0 && l.enobufs === 0)).toBe(true);
    expect(src.stats.dropped.conntrack).toBe(lost());
    expect(src.stats.decodeErrors).toBe(0);
    await src.close();
  });

  it('in the streamer, truncated events raise event_loss and a resync, as ENOBUFS does', async () => {
    const src = open({ netns: lab.nsPath(lab.router), slotBytes: 64 });
    let resyncs = 0;
    const resync = src.resync.bind(src);
    src.resync = () => {
      resyncs++;
      resync();
    };
    const streamer = createStreamer({ netns: lab.nsPath(lab.router), source: src, localAddrs: [] });
    const alerts: Alert[] = [];
    streamer.on('alert', (a) => alerts.push(a));
    streamer.on('error', () => {});
    await streamer.start();
    try {
      expect((await lab.runPeer(lab.client, ['connect', '--proto', 'udp', '--to', `${ADDR.server}:5353`, '--count', '3'])).ok).toBe(3);
      await until('event_loss firing', () => alerts.some((a) => a.kind === 'event_loss' && a.state === 'firing'), 10_000);
      await until('a resync', () => resyncs > 0, 10_000);
      expect(streamer.totals().eventsLost.conntrack).toBeGreaterThanOrEqual(3);
    } finally {
      await streamer.close();
    }
  });
}, { tools: ['ip', 'nft', 'conntrack', 'python3'] });
