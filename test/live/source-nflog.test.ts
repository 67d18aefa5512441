// NFLOG through the native source: packets dropped by a logging rule arrive with prefix,
// group, tuple and interface names; a group bound elsewhere is a clear error.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ADDR, createLab, type Lab } from '../../src/lab/topology.js';
import { NatwatchError } from '../../src/errors.js';
import { createNetlinkSource, type NetlinkSource } from '../../src/source/netlink-source.js';
import type { LossReport, SourceHandlers } from '../../src/source/types.js';
import type { NflogEvent } from '../../src/types.js';
import { describeLive } from '../helpers/gate.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const NF_INET_FORWARD = 2; // linux/netfilter.h: enum nf_inet_hooks

function collector() {
  const seen = { events: [] as Array<NflogEvent & { seq: number }>, loss: [] as LossReport[], errors: [] as Error[] };
  const handlers: SourceHandlers = {
    conntrack() {},
    nflog(v) {
      for (let i = 0; i < v.count; i++) seen.events.push({ ...v.seek(i).toEvent(), seq: v.seq });
    },
    loss: (r) => seen.loss.push(r),
    dumpBegin() {},
    dumpEnd() {},
    error: (e) => seen.errors.push(e),
  };
  return { seen, handlers };
}

describeLive('native netlink source: NFLOG (root: namespaces, nft, traffic)', () => {
  let lab: Lab;
  const sources: NetlinkSource[] = [];
  const open = (groups: number[]) => {
    const s = createNetlinkSource({ netns: lab.nsPath(lab.router), nflogGroups: groups, conntrack: false });
    sources.push(s);
    return s;
  };

  beforeAll(async () => {
    lab = await createLab({ prefix: 'nwa', ipv6: true });
    await lab.nft(lab.router, `table inet filter { chain forward { type filter hook forward priority 0; tcp dport 9999 log prefix "blocked-9999 " group 5 drop; }; }`);
  });
  afterAll(async () => {
    for (const s of sources) await s.close();
    await lab?.destroy();
  });

  it('delivers dropped packets with prefix, group, ports, devices and sequence numbers', async () => {
    const { seen, handlers } = collector();
    const src = open([5]);
    await src.start(handlers);
    expect(src.rcvbuf.nflog).toBeGreaterThanOrEqual(64 << 20);
    const res = await lab.runPeer(lab.client, ['connect', '--proto', 'tcp', '--to', `${ADDR.server}:9999`, '--count', '3', '--timeout-ms', '1500']);
    expect(res).toEqual({ ok: 0, failed: 3 });
    const end = Date.now() + 5000;
    while (seen.events.length < 3 && Date.now() < end) await sleep(25);
    expect(seen.events.length).toBeGreaterThanOrEqual(3);
    for (const e of seen.events) {
      expect(e).toMatchObject({
        type: 'event', source: 'nflog', group: 5, prefix: 'blocked-9999 ', family: 'ipv4', proto: 'tcp',
        src: ADDR.client, dst: ADDR.server, dport: 9999, indev: 'r-in', outdev: 'r-out', hook: NF_INET_FORWARD,
      });
      expect(e.sport).toBeGreaterThan(1023);
      expect(e.len).toBeGreaterThanOrEqual(40); // IP + TCP header of a SYN
    }
    expect(new Set(seen.events.map((e) => e.sport)).size).toBe(3);
    // NFULNL_CFG_F_SEQ numbers each packet of the group: consecutive, no gap reported.
    const seqs = seen.events.map((e) => e.seq);
    seqs.forEach((s, i) => i > 0 && expect(s).toBe(seqs[i - 1]! + 1));
    expect(seen.loss).toEqual([]);
    expect(seen.errors).toEqual([]);
    await src.close(); // releases group 5 for the next test
  });

  it('parses IPv6 packets too (inet table rule), addresses compressed', async () => {
    const { seen, handlers } = collector();
    const src = open([5]);
    await src.start(handlers);
    const res = await lab.runPeer(lab.client, ['connect', '--proto', 'tcp', '--to', `[${ADDR.server6}]:9999`, '--count', '1', '--timeout-ms', '800']);
    expect(res.failed).toBe(1);
    const end = Date.now() + 5000;
    while (seen.events.length < 1 && Date.now() < end) await sleep(25);
    expect(seen.events[0]).toMatchObject({ family: 'ipv6', proto: 'tcp', src: ADDR.client6, dst: ADDR.server6, dport: 9999, group: 5, indev: 'r-in', outdev: 'r-out' });
    expect(seen.events[0]!.len).toBeGreaterThanOrEqual(60); // IPv6 40 + TCP 20
    await src.close();
  });

  it('refuses a group another socket already holds, with a clear error', async () => {
    const first = open([6]);
    await first.start(collector().handlers);
    const second = open([6]);
    const err = await second.start(collector().handlers).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NatwatchError);
    expect((err as NatwatchError).code).toBe('EGROUPBUSY');
    expect((err as Error).message).toBe('NFLOG group 6 is already bound by another program (ulogd?)');
    // Once the holder lets go, the group can be bound again.
    await first.close();
    const third = open([6]);
    await expect(third.start(collector().handlers)).resolves.toBeUndefined();
  });
});
