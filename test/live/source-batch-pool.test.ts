// Batches reach JavaScript in one reused Buffer (native/batch-pool.h), not a new one each: a
// dump larger than the pool's first size grows it, and every record of every batch still
// decodes to what the kernel holds. Read through the raw addon, because only there is the
// Buffer itself visible.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createLab, type Lab } from '../../src/lab/topology.js';
import { BATCH_CONNTRACK, CtBatchView, FLAG_DUMP_END, LAYOUT, readHeader } from '../../src/source/codec.js';
import { loadNative, type NativeSource } from '../../src/source/native.js';
import { CtKind } from '../../src/source/types.js';
import { describeLive } from '../helpers/gate.js';
import { sendUdpFlows } from '../helpers/udp-flows.js';
import { until } from '../helpers/wait.js';

// 1,500 UDP flows: a dump of 1,500 records is ≈ 156 KB, more than the pool's first 64 KB.
const FLOWS = 1500;

describeLive('batch hand-off in one reused Buffer (root: lab NAT)', () => {
  let lab: Lab;
  let src: NativeSource | undefined;

  beforeAll(async () => {
    lab = await createLab({ prefix: 'nwq' });
    await lab.nft(lab.router, 'table ip nat { chain post { type nat hook postrouting priority 100; oifname "r-out" masquerade; }; }');
    await lab.spawnPeer(lab.server, ['serve', '--proto', 'udp', '--port', '5353']).ready;
  });
  afterAll(async () => {
    src?.close();
    await lab?.destroy();
  });

  it('a dump larger than the pool grows it once; later batches reuse it and decode intact', async () => {
    expect(await sendUdpFlows(lab, 5353, FLOWS, 100)).toBe(FLOWS);
    const listed = (await lab.exec(lab.router, 'conntrack', ['-L', '-p', 'udp', '--dport', '5353'])).stdout.trim().split('\n').length;
    expect(listed).toBeGreaterThanOrEqual(FLOWS);

    const buffers: Buffer[] = [];
    const dumpIds = new Set<number>();
    let dumpRecords = 0;
    let dumpDone = false;
    let news = 0;
    let biggest = 0;
    const view = new CtBatchView();
    src = new (loadNative().Source)(
      { netns: lab.nsPath(lab.router), conntrack: true, updates: false, nflogGroups: [], rcvbuf: 64 << 20, batchRecords: 4096, batchMs: 5, quietBatchMs: 5, dump: true, queue: 64, slotBytes: 0 },
      (batch) => {
        buffers.push(batch);
        const h = readHeader(batch);
        biggest = Math.max(biggest, LAYOUT.headerSize + h.count * h.recordSize);
        if (h.kind !== BATCH_CONNTRACK) return;
        view.reset(batch, h.count);
        for (let i = 0; i < h.count; i++) {
          view.seek(i);
          if (view.kind === CtKind.Dump && view.origDport === 5353) {
            dumpRecords++;
            dumpIds.add(view.id);
          } else if (view.kind === CtKind.New && view.origDport === 5354) news++;
        }
        if (h.flags & FLAG_DUMP_END) dumpDone = true;
      },
    );
    src.start();
    await until('the dump', () => dumpDone, 10_000);
    // Every dumped flow once, decoded from the grown buffer.
    expect(dumpRecords).toBe(listed);
    expect(dumpIds.size).toBe(listed);

    // Then events, batch after batch, in that same buffer (to another port: the first burst's
    // source ports may come round again and would match its live entries, so no NEW).
    const afterDump = buffers.length;
    expect(await sendUdpFlows(lab, 5354, 200, 100)).toBe(200);
    await until('200 NEW events', () => news >= 200, 10_000);
    const later = buffers.slice(afterDump);
    expect(later.length).toBeGreaterThan(0);
    for (const b of later) expect(b).toBe(buffers[afterDump - 1]);
    // The pool grew past its first 64 KB to hold the largest batch, and kept that size.
    expect(biggest).toBeGreaterThan(64 << 10);
    expect(later[0]!.byteLength).toBeGreaterThanOrEqual(biggest);
  }, 60_000);

  it('a batch that cannot get a Buffer arrives as its header, its records counted as dropped', async () => {
    const count = async () => Number((await lab.exec(lab.router, 'conntrack', ['-C'])).stdout.trim());
    const before = await count();
    expect(before).toBeGreaterThanOrEqual(FLOWS); // the first test's flows, ≈ 160 KB of dump
    const addon = loadNative();
    addon.limitBatchPool(64 << 10); // as if no Buffer above 64 KB could be made
    let delivered = 0;
    let dropped = 0;
    let headerOnly = 0;
    let dumpDone = false;
    const view = new CtBatchView();
    const s = new addon.Source(
      { netns: lab.nsPath(lab.router), conntrack: true, updates: false, nflogGroups: [], rcvbuf: 64 << 20, batchRecords: 4096, batchMs: 5, quietBatchMs: 5, dump: true, queue: 64, slotBytes: 0 },
      (batch) => {
        const h = readHeader(batch);
        if (h.kind !== BATCH_CONNTRACK) return;
        dropped += h.dropped;
        if (h.count === 0 && h.dropped > 0) headerOnly++;
        view.reset(batch, h.count);
        for (let i = 0; i < h.count; i++) if (view.seek(i).kind === CtKind.Dump) delivered++;
        if (h.flags & FLAG_DUMP_END) dumpDone = true;
      },
    );
    try {
      s.start();
      await until('the dump', () => dumpDone, 10_000);
    } finally {
      s.close();
      addon.limitBatchPool(0);
    }
    expect(await count()).toBe(before);
    // Nothing vanished: every dumped flow was either delivered or counted as dropped.
    expect(headerOnly).toBeGreaterThan(0);
    expect(dropped).toBeGreaterThan(0);
    expect(delivered + dropped).toBe(before);
  }, 60_000);
});
