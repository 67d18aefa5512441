// The reader receives conntrack events with io_uring (native/uring-rx.h) where it can, recvmmsg
// otherwise or when NATWATCH_NO_IO_URING=1 is set as the source starts: 1,500 flows through the
// lab NAT must all arrive as NEW events either way, the source must say which path it took, and
// closing the source must free its ring.
import { readdirSync, readlinkSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { guardSysctl } from '../../src/lab/sysctl-guard.js';
import { createLab, type Lab } from '../../src/lab/topology.js';
import { createNetlinkSource } from '../../src/source/netlink-source.js';
import { CtKind, type LossReport, type SourceHandlers } from '../../src/source/types.js';
import { describeLive } from '../helpers/gate.js';
import { sendUdpFlows } from '../helpers/udp-flows.js';
import { until } from '../helpers/wait.js';

const FLOWS = 1500;

/** io_uring instances this process holds open. */
function uringFds(): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === 'anon_inode:[io_uring]') n++;
    } catch {
      // closed meanwhile
    }
  }
  return n;
}


describeLive('reader receive path: io_uring, recvmmsg fallback (root: lab NAT)', () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await createLab({ prefix: 'nwu' });
    await lab.nft(lab.router, 'table ip nat { chain post { type nat hook postrouting priority 100; oifname "r-out" masquerade; }; }');
    await lab.spawnPeer(lab.server, ['serve', '--proto', 'udp', '--port', '5353']).ready;
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  /** FLOWS flows under one source started with NATWATCH_NO_IO_URING as given. */
  async function run(noUring: string | undefined) {
    const seen = { news: 0, dumpEnds: 0, loss: [] as LossReport[] };
    const handlers: SourceHandlers = {
      conntrack(v) {
        for (let i = 0; i < v.count; i++) {
          v.seek(i);
          if (v.kind === CtKind.New) seen.news++;
        }
      },
      nflog() {},
      loss: (r) => seen.loss.push(r),
      dumpBegin() {},
      dumpEnd: () => seen.dumpEnds++,
      error() {},
    };
    const saved = process.env.NATWATCH_NO_IO_URING;
    const fds0 = uringFds();
    const source = createNetlinkSource({ netns: lab.nsPath(lab.router) });
    try {
      // Read by the addon once per source, as it starts (setenv from process.env).
      if (noUring === undefined) delete process.env.NATWATCH_NO_IO_URING;
      else process.env.NATWATCH_NO_IO_URING = noUring;
      await source.start(handlers);
      if (saved === undefined) delete process.env.NATWATCH_NO_IO_URING;
      else process.env.NATWATCH_NO_IO_URING = saved;
      await until('initial dump', () => seen.dumpEnds > 0);
      await lab.exec(lab.router, 'conntrack', ['-F']);
      await new Promise((r) => setTimeout(r, 200));
      const news0 = seen.news;
      const sent = await sendUdpFlows(lab, 5353, FLOWS, 50);
      await until('every NEW delivered', () => seen.news - news0 >= sent, 10_000);
      const rings = uringFds() - fds0;
      return { sent, news: seen.news - news0, loss: seen.loss, receive: source.stats.receive, rings };
    } finally {
      await source.close();
      await lab.exec(lab.router, 'conntrack', ['-F']);
      if (saved === undefined) delete process.env.NATWATCH_NO_IO_URING;
      else process.env.NATWATCH_NO_IO_URING = saved;
      // The reader frees the ring with the channel, on its own thread, just after close.
      await until('ring freed with the source', () => uringFds() === fds0, 5_000);
    }
  }

  /** Every flow sent arrived as NEW, with no loss, on the path named. */
  function expectWhole(r: Awaited<ReturnType<typeof run>>, receive: 'io_uring' | 'recvmmsg', rings: number): void {
    expect(r.receive).toBe(receive);
    expect(r.rings).toBe(rings);
    expect(r.sent).toBe(FLOWS);
    expect(r.news).toBe(FLOWS);
    expect(r.loss.filter((l) => l.kernelDrops > 0 || l.enobufs > 0 || l.dropped > 0)).toEqual([]);
  }

  it('receives every event with io_uring by default, and frees the ring on close', async () => {
    expectWhole(await run(undefined), 'io_uring', 1);
  });

  it('falls back to recvmmsg with NATWATCH_NO_IO_URING=1, receiving every event the same', async () => {
    expectWhole(await run('1'), 'recvmmsg', 0);
  });

  it('falls back to recvmmsg where the kernel refuses io_uring (kernel.io_uring_disabled=2: EPERM, as a seccomp filter answers)', async () => {
    const guard = guardSysctl('kernel.io_uring_disabled', '2'); // restored on every way out
    let r: Awaited<ReturnType<typeof run>>;
    try {
      r = await run(undefined);
    } finally {
      guard.restore();
    }
    expectWhole(r, 'recvmmsg', 0);
  });
});
