// Coalescing (native/reader.cc Park): with a receive buffer large enough, the reader reads the
// event socket once per hand-off window while events flow, instead of waking for each. Counted
// by the reader thread's own voluntary context switches (each epoll_wait that sleeps is one)
// while a paced generator opens one UDP flow per millisecond: a source with a small buffer (no
// coalescing) is the comparison that shows the same traffic would cost a wakeup per event.
import { readdirSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLab, type Lab } from '../../src/lab/topology.js';
import { createNetlinkSource } from '../../src/source/netlink-source.js';
import { CtKind, type LossReport, type SourceHandlers } from '../../src/source/types.js';
import { describeLive } from '../helpers/gate.js';
import { sendUdpFlows } from '../helpers/udp-flows.js';
import { until } from '../helpers/wait.js';

const FLOWS = 1500;

/** Voluntary context switches of this process's reader thread (named natwatch-nl), or -1. */
function readerWakeups(): number {
  for (const t of readdirSync('/proc/self/task')) {
    try {
      if (readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim() !== 'natwatch-nl') continue;
      return Number(/^voluntary_ctxt_switches:\s+(\d+)$/m.exec(readFileSync(`/proc/self/task/${t}/status`, 'utf8'))![1]);
    } catch {
      // exited meanwhile
    }
  }
  return -1;
}


describeLive('reader coalescing (root: lab NAT, paced flows)', () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await createLab({ prefix: 'nwc' });
    await lab.nft(lab.router, 'table ip nat { chain post { type nat hook postrouting priority 100; oifname "r-out" masquerade; }; }');
    await lab.spawnPeer(lab.server, ['serve', '--proto', 'udp', '--port', '5353']).ready;
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  /** Runs the paced generator under one source; its NEW events, loss reports and the reader's wakeups. */
  async function measure(rcvbufBytes: number) {
    const seen = { news: 0, dumpEnds: 0, loss: [] as LossReport[], firstNewAt: 0 };
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
    const source = createNetlinkSource({ netns: lab.nsPath(lab.router), rcvbufBytes });
    try {
      await source.start(handlers);
      await until('initial dump', () => seen.dumpEnds > 0);
      await lab.exec(lab.router, 'conntrack', ['-F']);
      await new Promise((r) => setTimeout(r, 300));
      const before = readerWakeups();
      const news0 = seen.news;
      const batches0 = source.stats.batches;
      const t0 = performance.now();
      const sent = await sendUdpFlows(lab, 5353, FLOWS); // one a millisecond
      await until('every NEW delivered', () => seen.news - news0 >= sent, 10_000);
      const wakeups = readerWakeups() - before;
      const ms = performance.now() - t0;
      return { sent, news: seen.news - news0, wakeups, loss: seen.loss, batches: source.stats.batches - batches0, ms };
    } finally {
      await source.close();
      await lab.exec(lab.router, 'conntrack', ['-F']);
    }
  }

  it('a large buffer reads once per window: far fewer wakeups than events, none lost', async () => {
    const big = await measure(64 << 20);
    const small = await measure(1 << 20);
    console.log(`${big.sent} paced flows in ${big.ms.toFixed(0)} ms: coalescing ${big.wakeups} reader wakeups and ${big.batches} batches, without ${small.wakeups} and ${small.batches}`);
    expect(big.sent).toBe(FLOWS);
    expect(small.sent).toBe(FLOWS);
    expect(big.loss.filter((l) => l.kernelDrops > 0 || l.enobufs > 0)).toEqual([]);
    expect(big.news).toBe(FLOWS);
    // ≈ 1.5 s of flows in 25 ms parked windows (native kMaxParkMs) is ≈ 60 windows, each a
    // wakeup or two; they reach JavaScript in 100 ms batches (tracking only: no UPDATE).
    expect(big.wakeups).toBeLessThan(FLOWS / 5);
    // The same traffic without coalescing wakes the reader for most events: the test's traffic
    // is paced enough to tell the two apart.
    expect(small.wakeups).toBeGreaterThan(big.wakeups * 3);
    for (const m of [big, small]) expect(m.batches).toBeLessThanOrEqual(Math.ceil(m.ms / 100) + 3);
  });
});
