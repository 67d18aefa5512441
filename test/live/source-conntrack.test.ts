// Native netlink source against the real kernel: conntrack events, table dump, counters,
// loss accounting and error mapping, in a fresh client–router–server lab per suite.
import { spawn, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ADDR, createLab, type Lab } from '../../src/lab/topology.js';
import { createNetlinkSource, type NetlinkSource } from '../../src/source/netlink-source.js';
import { CtKind, type LossReport, type SourceHandlers } from '../../src/source/types.js';
import type { ConntrackEvent } from '../../src/types.js';
import { NatwatchError } from '../../src/errors.js';
import { parseConntrackLine as parseCt } from '../fixtures/fixtures.js';
import { sleep, until } from '../helpers/wait.js';
import { describeLive } from '../helpers/gate.js';

interface Seen {
  events: Array<ConntrackEvent & { dump: boolean }>;
  order: string[];
  loss: LossReport[];
  errors: Error[];
}

function collector(): { seen: Seen; handlers: SourceHandlers } {
  const seen: Seen = { events: [], order: [], loss: [], errors: [] };
  const handlers: SourceHandlers = {
    conntrack(v) {
      for (let i = 0; i < v.count; i++) {
        v.seek(i);
        seen.events.push({ ...v.toEvent(), dump: v.kind === CtKind.Dump });
        seen.order.push(v.kind === CtKind.Dump ? 'record' : 'event');
      }
    },
    nflog() {},
    loss: (r) => seen.loss.push(r),
    dumpBegin: () => seen.order.push('begin'),
    dumpEnd: () => seen.order.push('end'),
    error: (e) => seen.errors.push(e),
  };
  return { seen, handlers };
}

describeLive('native netlink source: conntrack (root: namespaces, nft, traffic)', () => {
  let lab: Lab;
  const sources: NetlinkSource[] = [];
  const children: ChildProcess[] = [];
  const open = (o: Parameters<typeof createNetlinkSource>[0]) => {
    const s = createNetlinkSource(o);
    sources.push(s);
    return s;
  };

  beforeAll(async () => {
    lab = await createLab({ prefix: 'nwa', ipv6: true });
    await lab.nft(lab.router, `table ip nat { chain post { type nat hook postrouting priority 100; oifname "r-out" tcp dport 80 masquerade to :50000-50009; oifname "r-out" udp dport 53 masquerade to :50000-50009; oifname "r-out" masquerade; }; }`);
    // IPv6 conntrack is enabled per namespace only once an ip6 rule needs it.
    await lab.nft(lab.router, `table ip6 track { chain f { type filter hook forward priority 0; ct state new counter; }; }`);
    const tcp = lab.spawnPeer(lab.server, ['serve', '--proto', 'tcp', '--port', '80']);
    const udp = lab.spawnPeer(lab.server, ['serve', '--proto', 'udp', '--port', '53']);
    const udpWide = lab.spawnPeer(lab.server, ['serve', '--proto', 'udp', '--port', '5353']);
    await Promise.all([tcp.ready, udp.ready, udpWide.ready]);
  });
  afterAll(async () => {
    for (const s of sources) await s.close();
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    await lab?.destroy();
  });

  it('reports a flow that existed before it started through the dump, bracketed', async () => {
    const held = lab.spawnPeer(lab.client, ['connect', '--proto', 'tcp', '--to', `${ADDR.server}:80`, '--count', '1', '--hold-ms', '3000']);
    children.push(held);
    let listed = '';
    for (let i = 0; i < 50 && !/ESTABLISHED/.test(listed); i++) {
      await sleep(50);
      listed = (await lab.exec(lab.router, 'conntrack', ['-L', '-p', 'tcp', '-o', 'id'])).stdout;
    }
    const want = listed.split('\n').map(parseCt).find((f) => f?.state === 'ESTABLISHED');
    expect(want).toBeTruthy();

    const { seen, handlers } = collector();
    const src = open({ netns: lab.nsPath(lab.router) });
    await src.start(handlers);
    await until('dump end', () => seen.order.includes('end'));
    expect(seen.order[0]).toBe('begin');
    const begin = seen.order.indexOf('begin');
    const end = seen.order.indexOf('end');
    const dumped = seen.events.filter((e) => e.dump);
    expect(seen.order.slice(begin + 1, end).filter((x) => x === 'record').length).toBe(dumped.length);
    const got = dumped.find((e) => e.id === want!.id);
    expect(got).toBeTruthy();
    expect(got!.orig).toEqual(want!.orig);
    expect(got!.reply).toEqual(want!.reply);
    expect(got!.reply.dst).toBe(ADDR.routerOut);
    expect(got!.state).toBe('ESTABLISHED');
    expect(got!.nat).toBe('snat');
    expect(got!.proto).toBe('tcp');
    expect(got!.family).toBe('ipv4');
    expect(src.rcvbuf.conntrack).toBeGreaterThanOrEqual(64 << 20);

    // resync() runs another bracketed dump.
    seen.order.length = 0;
    src.resync();
    await until('second dump', () => seen.order.includes('end'));
    expect(seen.order[0]).toBe('begin');
    await src.close();
  });

  it('emits NEW/UPDATE/DESTROY for TCP and UDP that match conntrack -E, NAT reply tuple included', async () => {
    const ev = spawn('ip', ['netns', 'exec', lab.router, 'stdbuf', '-oL', 'conntrack', '-E', '-o', 'id'], { stdio: ['ignore', 'pipe', 'ignore'] });
    children.push(ev);
    let evOut = '';
    ev.stdout!.on('data', (d) => (evOut += d));
    const { seen, handlers } = collector();
    const src = open({ netns: lab.nsPath(lab.router), dump: false, updates: true });
    await src.start(handlers);
    await sleep(200); // conntrack -E subscribed

    const tcp = await lab.runPeer(lab.client, ['connect', '--proto', 'tcp', '--to', `${ADDR.server}:80`, '--count', '1', '--hold-ms', '200']);
    const udp = await lab.runPeer(lab.client, ['connect', '--proto', 'udp', '--to', `${ADDR.server}:53`, '--count', '1']);
    expect(tcp.ok + udp.ok).toBe(2);
    // TCP sits in TIME_WAIT and UDP in its timeout: delete them to see DESTROY.
    await lab.exec(lab.router, 'conntrack', ['-D', '-s', ADDR.client]);
    const ours = () => seen.events.filter((e) => e.orig.dport === 80 || e.orig.dport === 53);
    await until('destroy events', () => ours().filter((e) => e.event === 'destroy').length >= 2);
    const parsed = () => evOut.split('\n').map(parseCt).filter((x) => x !== null);
    const ids = [...new Set(ours().filter((e) => e.event === 'new').map((e) => e.id))];
    await until('conntrack -E output', () => ids.every((id) => parsed().some((t) => t.id === id && t.event === 'destroy')));
    ev.kill('SIGTERM');

    const theirs = parsed();
    expect(theirs.length).toBeGreaterThanOrEqual(6);
    for (const proto of ['tcp', 'udp']) {
      // The flow this test opened: the one we saw created (an earlier test's flow may linger).
      const id = ours().find((e) => e.proto === proto && e.event === 'new')!.id;
      const mine = ours().filter((e) => e.id === id);
      expect([...new Set(mine.map((e) => e.event))].sort()).toEqual(['destroy', 'new', 'update']);
      const ref = theirs.filter((t) => t.id === id);
      // Same event sequence as conntrack -E for this id, same tuples each time.
      expect(mine.map((e) => e.event)).toEqual(ref.map((t) => t.event));
      mine.forEach((e, i) => {
        expect(e.orig).toEqual(ref[i]!.orig);
        expect(e.reply).toEqual(ref[i]!.reply);
        if (proto === 'tcp' && ref[i]!.state) expect(e.state).toBe(ref[i]!.state);
      });
      expect(mine[0]!.orig).toMatchObject({ src: ADDR.client, dst: ADDR.server });
      expect(mine[0]!.reply.dst).toBe(ADDR.routerOut);
      expect(mine[0]!.reply.dport).toBeGreaterThanOrEqual(50000);
      expect(mine[0]!.reply.dport).toBeLessThanOrEqual(50009);
      expect(mine.find((e) => e.event === 'update')!.nat).toBe('snat');
    }
    expect(seen.loss).toEqual([]);
    await src.close();
  });

  it('receives UPDATE events only while asked to: setUpdates() joins and leaves the group', async () => {
    const { seen, handlers } = collector();
    const src = open({ netns: lab.nsPath(lab.router), dump: false });
    await src.start(handlers);
    const kinds = () => seen.events.filter((e) => e.orig.dport === 5353).map((e) => e.event);
    const udp = () => lab.runPeer(lab.client, ['connect', '--proto', 'udp', '--to', `${ADDR.server}:5353`, '--count', '3']);
    const flushed = async (n: number) => {
      await lab.exec(lab.router, 'conntrack', ['-D', '-p', 'udp', '--dport', '5353']);
      await until(`${n} destroy events`, () => kinds().filter((k) => k === 'destroy').length >= n);
    };
    await lab.exec(lab.router, 'conntrack', ['-D', '-p', 'udp', '--dport', '5353']).catch(() => {});
    seen.events.length = 0;
    expect((await udp()).ok).toBe(3);
    await flushed(3);
    expect(kinds().sort()).toEqual(['destroy', 'destroy', 'destroy', 'new', 'new', 'new']);
    // Our socket is in groups NEW (1) and DESTROY (3) only: mask 0b101.
    const table = (await lab.exec(lab.router, 'cat', ['/proc/net/netlink'])).stdout;
    const masks = table.split('\n').map((l) => l.trim().split(/\s+/)).filter((c) => c[1] === '12').map((c) => c[3]);
    expect(masks).toContain('00000005');

    src.setUpdates(true);
    seen.events.length = 0;
    expect((await udp()).ok).toBe(3);
    await flushed(3);
    expect(kinds().filter((k) => k === 'update').length).toBe(3); // the reply: one per flow

    src.setUpdates(false);
    seen.events.length = 0;
    expect((await udp()).ok).toBe(3);
    await flushed(3);
    expect(kinds().filter((k) => k === 'update')).toEqual([]);
    await src.close();
  });

  it('decodes IPv6 flows with compressed addresses', async () => {
    const { seen, handlers } = collector();
    const src = open({ netns: lab.nsPath(lab.router), dump: false });
    await src.start(handlers);
    const r = await lab.runPeer(lab.client, ['connect', '--proto', 'udp', '--to', `[${ADDR.server6}]:53`, '--count', '1']);
    expect(r.ok).toBe(1);
    await until('ipv6 new', () => seen.events.some((e) => e.family === 'ipv6' && e.event === 'new'));
    const e = seen.events.find((x) => x.family === 'ipv6')!;
    expect(e.orig).toMatchObject({ src: ADDR.client6, dst: ADDR.server6, dport: 53 });
    expect(e.reply).toMatchObject({ src: ADDR.server6, dst: ADDR.client6, sport: 53 });
    expect(e.proto).toBe('udp');
    await src.close();
  });

  it('reads counters and the namespace limits', async () => {
    const src = open({ netns: lab.nsPath(lab.router), dump: false });
    await src.start(collector().handlers);
    const snap = await src.readCounters();
    for (const k of ['found', 'invalid', 'insert', 'insert_failed', 'drop', 'early_drop', 'error', 'search_restart', 'clash_resolve', 'chaintoolong'] as const) {
      expect(typeof snap.counters[k]).toBe('number');
    }
    const sysMax = Number((await lab.exec(lab.router, 'cat', ['/proc/sys/net/netfilter/nf_conntrack_max'])).stdout);
    const sysBuckets = Number((await lab.exec(lab.router, 'cat', ['/proc/sys/net/netfilter/nf_conntrack_buckets'])).stdout);
    const range = (await lab.exec(lab.router, 'cat', ['/proc/sys/net/ipv4/ip_local_port_range'])).stdout.trim().split(/\s+/).map(Number);
    expect(snap.limits.max).toBe(sysMax);
    expect(snap.limits.buckets).toBe(sysBuckets);
    expect(snap.limits.localPortRange).toEqual(range);
    const count = Number((await lab.exec(lab.router, 'conntrack', ['-C'])).stdout);
    expect(snap.count).toBe(count);
    // conntrack -S prints one line per CPU; our insert is their sum.
    const s = (await lab.exec(lab.router, 'conntrack', ['-S'])).stdout;
    const sum = (k: string) => [...s.matchAll(new RegExp(`\\b${k}=(\\d+)`, 'g'))].reduce((a, m) => a + Number(m[1]), 0);
    expect(snap.counters.insert_failed).toBe(sum('insert_failed'));
    expect(snap.counters.drop).toBe(sum('drop'));
    await src.close();
  });

  it('counts loss with a tiny receive buffer and keeps reading', async () => {
    const { seen, handlers } = collector();
    const src = open({ netns: lab.nsPath(lab.router), dump: false, rcvbufBytes: 4096 });
    await src.start(handlers);
    expect(src.rcvbuf.conntrack).toBeLessThan(64 * 1024);
    // 400 flows at once, then one flush destroying them all in a single syscall: bursts far
    // beyond what an 8 KiB buffer holds (≈ 6 events).
    const r = await lab.runPeer(lab.client, ['connect', '--proto', 'udp', '--to', `${ADDR.server}:5353`, '--count', '400']);
    expect(r.ok).toBeGreaterThan(0); // some UDP answers may be lost in the burst itself
    const created = Number((await lab.exec(lab.router, 'conntrack', ['-C'])).stdout);
    expect(created).toBeGreaterThan(100);
    await lab.exec(lab.router, 'conntrack', ['-F']);
    await until('loss report', () => seen.loss.some((l) => l.enobufs > 0));
    const enobufs = seen.loss.reduce((a, l) => a + l.enobufs, 0);
    expect(enobufs).toBeGreaterThan(0);
    expect(src.stats.enobufs.conntrack).toBe(enobufs);
    expect(seen.events.length).toBeLessThan(2 * created); // NEW + DESTROY each, at least: some were lost
    // The kernel agrees: our socket (groups NEW|DESTROY, 00000005) shows drops in /proc/net/netlink.
    const table = (await lab.exec(lab.router, 'cat', ['/proc/net/netlink'])).stdout;
    const ours = table.split('\n').map((l) => l.trim().split(/\s+/)).filter((c) => c[1] === '12' && c[3] === '00000005');
    expect(ours.some((c) => Number(c[8]) > 0)).toBe(true);
    // Not a dead reader: later events still arrive.
    const before = seen.events.length;
    await lab.runPeer(lab.client, ['connect', '--proto', 'udp', '--to', `${ADDR.server}:5353`, '--count', '1']);
    await until('events after loss', () => seen.events.length > before);
    await src.close();
  });

  /** A handler that stalls the event loop for `ms` per batch: JavaScript far slower than the reader. */
  const stalling = (handlers: ReturnType<typeof collector>['handlers'], ms: number, count: (n: number) => void) => {
    const inner = handlers.conntrack;
    handlers.conntrack = (v) => {
      inner(v);
      count(v.count);
      const end = Date.now() + ms;
      while (Date.now() < end);
    };
  };

  it('waits for a slow JavaScript consumer instead of dropping: events wait in the socket buffer', async () => {
    // One-record batches and a one-batch queue behind a handler that blocks 20 ms per batch:
    // the reader must stop reading (not drop), so with a large buffer every event arrives.
    let received = 0;
    const { seen, handlers } = collector();
    stalling(handlers, 20, (n) => (received += n));
    await lab.exec(lab.router, 'conntrack', ['-F']); // earlier tests' flows: not ours to count
    expect(Number((await lab.exec(lab.router, 'conntrack', ['-C'])).stdout)).toBe(0);
    const src = open({ netns: lab.nsPath(lab.router), dump: false, batchRecords: 1, batchMs: 1, queue: 1, updates: true });
    await src.start(handlers);
    const r = await lab.runPeer(lab.client, ['connect', '--proto', 'udp', '--to', `${ADDR.server}:5353`, '--count', '100']);
    const created = Number((await lab.exec(lab.router, 'conntrack', ['-C'])).stdout);
    expect(created).toBeGreaterThanOrEqual(r.ok);
    await lab.exec(lab.router, 'conntrack', ['-F']);
    const total = 3 * created; // each flow: NEW, UPDATE (reply seen), DESTROY
    await until('every event delivered', () => received >= total, 30_000);
    expect(received).toBe(total);
    expect(seen.loss.reduce((a, l) => a + l.dropped + l.kernelDrops + l.enobufs, 0)).toBe(0);
    await src.close();
  });

  it('when the socket buffer overflows behind a slow consumer, every lost event is counted exactly', async () => {
    // Same stall, but a 4 KiB buffer: the kernel must drop. received + kernel drops = sent.
    let received = 0;
    const { seen, handlers } = collector();
    stalling(handlers, 20, (n) => (received += n));
    await lab.exec(lab.router, 'conntrack', ['-F']);
    const src = open({ netns: lab.nsPath(lab.router), dump: false, batchRecords: 1, batchMs: 1, queue: 1, rcvbufBytes: 4096, updates: true });
    await src.start(handlers);
    await lab.runPeer(lab.client, ['connect', '--proto', 'udp', '--to', `${ADDR.server}:5353`, '--count', '100']);
    const created = Number((await lab.exec(lab.router, 'conntrack', ['-C'])).stdout);
    await lab.exec(lab.router, 'conntrack', ['-F']);
    const total = 3 * created;
    const lost = () => seen.loss.reduce((a, l) => a + l.kernelDrops + l.dropped, 0);
    await until('every event accounted for', () => received + lost() >= total, 30_000);
    expect(lost()).toBeGreaterThan(0);
    expect(seen.loss.reduce((a, l) => a + l.dropped, 0)).toBe(0); // nothing dropped on our side
    expect(received + lost()).toBe(total);
    await src.close();
  });

  it('delivers a whole dump, brackets included, to a consumer slower than the dump', async () => {
    await lab.runPeer(lab.client, ['connect', '--proto', 'udp', '--to', `${ADDR.server}:5353`, '--count', '200']);
    const entries = Number((await lab.exec(lab.router, 'conntrack', ['-C'])).stdout);
    expect(entries).toBeGreaterThan(100);
    const { seen, handlers } = collector();
    stalling(handlers, 10, () => {});
    const src = open({ netns: lab.nsPath(lab.router), batchRecords: 1, batchMs: 1, queue: 1 });
    await src.start(handlers);
    await until('dump end', () => seen.order.includes('end'), 30_000);
    const brackets = seen.order.filter((x) => x !== 'record' && x !== 'event');
    expect(brackets).toEqual(['begin', 'end']);
    expect(seen.loss.reduce((a, l) => a + l.dropped, 0)).toBe(0);
    expect(seen.events.filter((e) => e.dump).length).toBeGreaterThanOrEqual(entries);
    await src.close();
  });

  it('says clearly when the namespace does not exist', async () => {
    const src = open({ netns: '/var/run/netns/nwa-missing-ns' });
    const err = await src.start(collector().handlers).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NatwatchError);
    expect((err as NatwatchError).code).toBe('ENETNS');
    expect((err as Error).message).toBe("network namespace 'nwa-missing-ns' not found (/var/run/netns/nwa-missing-ns)");
  });
});
