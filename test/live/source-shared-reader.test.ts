// One reader thread for every source in the process: two sources in two namespaces share it
// (counted by name in /proc/self/task), each receives its own namespace's events, and each
// counts its own loss (the overflow of one namespace's socket is not the other's).
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ADDR, createLab, type Lab } from '../../src/lab/topology.js';
import { netlinkSockets } from '../../src/lab/scenarios/loss.js';
import { createNetlinkSource, type NetlinkSource } from '../../src/source/netlink-source.js';
import { CtKind, type LossReport, type SourceHandlers } from '../../src/source/types.js';
import { describeLive } from '../helpers/gate.js';
import { until } from '../helpers/wait.js';


/** Threads of this process named like the reader (native/reader.cc pthread_setname_np). */
function readerThreads(): number {
  let n = 0;
  for (const t of readdirSync('/proc/self/task')) {
    try {
      if (readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim() === 'natwatch-nl') n++;
    } catch {
      // exited meanwhile
    }
  }
  return n;
}

function collector() {
  const seen = { newIds: new Set<number>(), origSrc: new Set<string>(), loss: [] as LossReport[], dumpEnds: 0 };
  const handlers: SourceHandlers = {
    conntrack(v) {
      for (let i = 0; i < v.count; i++) {
        v.seek(i);
        if (v.kind === CtKind.New) {
          seen.newIds.add(v.id);
          seen.origSrc.add(`${v.origSrc()}>${v.origDst()}:${v.origDport}`);
        }
      }
    },
    nflog() {},
    loss: (r) => seen.loss.push(r),
    dumpBegin() {},
    dumpEnd: () => seen.dumpEnds++,
    error() {},
  };
  return { seen, handlers };
}

const NAT = 'table ip nat { chain post { type nat hook postrouting priority 100; oifname "r-out" masquerade; }; }';

describeLive('one reader thread for all namespaces (root: two labs)', () => {
  let a: Lab;
  let b: Lab;
  const sources: NetlinkSource[] = [];

  beforeAll(async () => {
    [a, b] = await Promise.all([createLab({ prefix: 'nwr' }), createLab({ prefix: 'nwr' })]);
    for (const lab of [a, b]) {
      await lab.nft(lab.router, NAT);
      await lab.spawnPeer(lab.server, ['serve', '--proto', 'udp', '--port', '5353']).ready;
    }
  });
  afterAll(async () => {
    for (const s of sources) await s.close();
    await a?.destroy();
    await b?.destroy();
  });

  it('shares one thread, delivers each namespace its own events, counts loss per namespace', async () => {
    expect(readerThreads()).toBe(0);
    const ca = collector();
    const cb = collector();
    const sa = createNetlinkSource({ netns: a.nsPath(a.router) });
    sources.push(sa);
    await sa.start(ca.handlers);
    await until('the reader thread named', () => readerThreads() === 1); // it names itself once running
    // B's socket holds a few events only: a burst there overflows it, A's 64 MiB does not.
    const sb = createNetlinkSource({ netns: b.nsPath(b.router), rcvbufBytes: 4096 });
    sources.push(sb);
    await sb.start(cb.handlers);
    expect(readerThreads()).toBe(1);
    await until('both initial dumps', () => ca.seen.dumpEnds > 0 && cb.seen.dumpEnds > 0);

    // Both namespaces' traffic at once: 300 UDP flows each, then a flush destroying them all.
    const [ra, rb] = await Promise.all(
      [a, b].map((lab) => lab.runPeer(lab.client, ['connect', '--proto', 'udp', '--to', `${ADDR.server}:5353`, '--count', '300'])),
    );
    expect(ra!.ok).toBeGreaterThan(250);
    expect(rb!.ok).toBeGreaterThan(0);
    const createdA = Number((await a.exec(a.router, 'conntrack', ['-C'])).stdout);
    await Promise.all([a, b].map((lab) => lab.exec(lab.router, 'conntrack', ['-F'])));
    await until('A: every NEW', () => ca.seen.newIds.size >= createdA, 10_000);
    await until('B: loss reported', () => cb.seen.loss.some((l) => l.kernelDrops > 0 || l.enobufs > 0), 10_000);

    // Each got its own namespace's flows (same addresses in both labs: told apart by conntrack id sets).
    expect(ca.seen.loss).toEqual([]);
    expect(sa.stats.kernelDrops.conntrack).toBe(0);
    expect(sb.stats.kernelDrops.conntrack).toBeGreaterThan(0);
    expect(cb.seen.newIds.size).toBeGreaterThan(0);
    // B's count is the kernel's: the Drops column of its event socket in B's /proc/net/netlink.
    // The event sockets: groups NEW (1) and DESTROY (3), mask 0b101.
    const eventDrops = async (lab: Lab) => (await netlinkSockets(lab, lab.router)).filter((s) => s.groups === 0b101).map((s) => s.drops);
    const drops = await eventDrops(b);
    await until('B: drops all reported', () => drops.includes(sb.stats.kernelDrops.conntrack), 5_000);
    expect(await eventDrops(a)).toEqual([0]);

    // A resync on B dumps B only.
    const endsA = ca.seen.dumpEnds;
    const endsB = cb.seen.dumpEnds;
    sb.resync();
    await until('B: resync dump', () => cb.seen.dumpEnds > endsB);
    expect(ca.seen.dumpEnds).toBe(endsA);

    // The thread outlives the first close and goes with the last.
    await sa.close();
    expect(readerThreads()).toBe(1);
    const before = cb.seen.newIds.size;
    await b.runPeer(b.client, ['connect', '--proto', 'udp', '--to', `${ADDR.server}:5353`, '--count', '1']);
    await until('B still read after A closed', () => cb.seen.newIds.size > before);
    await sb.close();
    expect(readerThreads()).toBe(0);
  });

  it('sources that come and go in any order leave no thread and no socket behind', async () => {
    const fds = () => readdirSync('/proc/self/fd').length;
    const before = fds();
    const paths = [a.nsPath(a.router), b.nsPath(b.router), a.nsPath(a.client), b.nsPath(b.server)];
    const live: NetlinkSource[] = [];
    for (let round = 0; round < 20; round++) {
      // Start two, close the oldest (or two at once every fifth round): the thread stays up
      // while any is left, channels are added and retired under it.
      for (let i = 0; i < 2; i++) {
        const s = createNetlinkSource({ netns: paths[(round + i) % paths.length]!, nflogGroups: [100 + round * 2 + i] });
        await s.start(collector().handlers);
        s.resync();
        live.push(s);
      }
      await live.shift()!.close();
      if (round % 5 === 4) await live.shift()!.close();
      expect(readerThreads()).toBeLessThanOrEqual(1);
    }
    expect(live.length).toBeGreaterThan(0);
    for (const s of live.splice(0)) await s.close();
    await until('the reader thread gone', () => readerThreads() === 0);
    expect(fds()).toBe(before);
  });
});
