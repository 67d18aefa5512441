// Kernel-captured datagrams through the C++ decoder (decodeForTest: the reader's own decode
// path) and the TypeScript codec, compared with what conntrack-tools printed for the same
// entries at capture time.
import { constants } from 'node:os';
import { describe, expect, it } from 'vitest';
import { FLAG_DUMP_END, FLAG_DUMP_ERROR, CtBatchView, NflogBatchView, readHeader, readStats, BATCH_CONNTRACK, BATCH_NFLOG } from '../../src/source/codec.js';
import { formatConntrack, formatNflog } from '../../src/source/format.js';
import { loadNative } from '../../src/source/native.js';
import { CtKind } from '../../src/source/types.js';
import { parseConntrackLine, readFixture, sumStats } from '../fixtures/fixtures.js';

const addon = loadNative();
const TS = Date.UTC(2026, 0, 2, 3, 4, 5, 678);

function ct(name: string, kind: 'conntrack' | 'dump' = 'conntrack') {
  const f = readFixture(name);
  const batch = addon.decodeForTest(kind, f.bytes, TS);
  const h = readHeader(batch);
  expect(h.kind).toBe(BATCH_CONNTRACK);
  expect(h.decodeErrors).toBe(0);
  const view = new CtBatchView().reset(batch, h.count);
  const refs = f.refs.map(parseConntrackLine).filter((r) => r !== null);
  return { h, view, refs };
}

describe('conntrack fixtures: C++ decoder + TS codec agree with conntrack -E', () => {
  it('ct-new-tcp-snat: NEW (CREATE|EXCL), SYN_SENT, masqueraded reply tuple, timeout', () => {
    const { h, view, refs } = ct('ct-new-tcp-snat');
    expect(h.count).toBe(1);
    const ref = refs[0]!;
    expect(view.seek(0).kind).toBe(CtKind.New);
    expect(view.toEvent()).toEqual({
      type: 'event', source: 'conntrack', netns: null, event: 'new', id: ref.id, ts: '2026-01-02T03:04:05.678Z', family: 'ipv4', proto: 'tcp',
      orig: ref.orig, reply: ref.reply, state: 'SYN_SENT', nat: 'snat', timeout: ref.timeout, mark: 0, zone: 0,
    });
    expect(ref.reply.dport).toBeGreaterThanOrEqual(50000);
    expect(view.tcpState).toBe(1); // TCP_CONNTRACK_SYN_SENT
  });

  it('ct-update: UPDATE shares the message type, tells apart by flags; state is one conntrack -E saw', () => {
    const { h, view, refs } = ct('ct-update');
    expect(h.count).toBe(1);
    const e = view.seek(0).toEvent();
    expect(e.event).toBe('update');
    expect(refs.map((r) => r.state)).toContain(e.state);
    expect(e.orig).toEqual(refs[0]!.orig);
    expect(e.reply).toEqual(refs[0]!.reply);
    expect(e.id).toBe(refs[0]!.id);
  });

  it('ct-destroy: DESTROY with tuples and id', () => {
    const { view, refs } = ct('ct-destroy');
    const e = view.seek(0).toEvent();
    expect(e).toMatchObject({ event: 'destroy', id: refs[0]!.id, orig: refs[0]!.orig, reply: refs[0]!.reply, proto: 'tcp' });
  });

  it('ct-udp: no TCP state, SNAT from the status bits', () => {
    const { view, refs } = ct('ct-udp');
    const e = view.seek(0).toEvent();
    expect(e).toMatchObject({ event: 'new', proto: 'udp', state: null, nat: 'snat', orig: refs[0]!.orig, reply: refs[0]!.reply, timeout: refs[0]!.timeout });
    expect(view.tcpState).toBe(-1);
  });

  it('ct-icmp: the echo id rides in both port fields', () => {
    const { view, refs } = ct('ct-icmp');
    const e = view.seek(0).toEvent();
    expect(e).toMatchObject({ event: 'new', proto: 'icmp', orig: refs[0]!.orig, reply: refs[0]!.reply });
    expect(e.orig.sport).toBe(e.orig.dport);
    expect(e.orig.sport).toBeGreaterThan(0);
  });

  it('ct-ipv6: compressed IPv6 text equals conntrack’s', () => {
    const { view, refs } = ct('ct-ipv6');
    const e = view.seek(0).toEvent();
    expect(e).toMatchObject({ family: 'ipv6', proto: 'udp', orig: refs[0]!.orig, reply: refs[0]!.reply, nat: null });
    expect(e.orig.src).toBe('2001:db8:1::5');
  });

  it('ct-dump: every entry conntrack -L listed, kind Dump, and the end of the dump seen', () => {
    const { h, view, refs } = ct('ct-dump', 'dump');
    expect(h.count).toBe(refs.length);
    expect(h.flags & FLAG_DUMP_END).toBe(FLAG_DUMP_END);
    const byId = new Map(refs.map((r) => [r.id, r]));
    for (let i = 0; i < view.count; i++) {
      const e = view.seek(i).toEvent();
      expect(view.kind).toBe(CtKind.Dump);
      const ref = byId.get(e.id)!;
      expect(ref).toBeTruthy();
      expect(e.orig).toEqual(ref.orig);
      expect(e.reply).toEqual(ref.reply);
      expect(e.proto).toBe(ref.proto);
      expect(e.state).toBe(ref.proto === 'tcp' ? ref.state : null);
    }
  });

  it('ct-dump ending in NLMSG_DONE that carries -errno: the records, then a failed end with that errno', () => {
    const bytes = Buffer.from(readFixture('ct-dump').bytes);
    let done = -1;
    for (let off = 0; off + 16 <= bytes.length; off += (bytes.readUInt32LE(off) + 3) & ~3) {
      if (bytes.readUInt16LE(off + 4) === 3 /* NLMSG_DONE */) done = off;
    }
    expect(bytes.readUInt32LE(done)).toBeGreaterThanOrEqual(20);
    const clean = readHeader(addon.decodeForTest('dump', bytes));
    expect([clean.flags & (FLAG_DUMP_END | FLAG_DUMP_ERROR), clean.errno]).toEqual([FLAG_DUMP_END, 0]);
    bytes.writeInt32LE(-constants.errno.EINTR, done + 16);
    const h = readHeader(addon.decodeForTest('dump', bytes));
    expect(h.count).toBe(clean.count);
    expect([h.flags & (FLAG_DUMP_END | FLAG_DUMP_ERROR), h.errno]).toEqual([FLAG_DUMP_END | FLAG_DUMP_ERROR, constants.errno.EINTR]);
  });

  it('formats a text line with both tuples, state and NAT marker', () => {
    const { view, refs } = ct('ct-new-tcp-snat');
    const r = refs[0]!;
    expect(formatConntrack(view.seek(0))).toBe(
      `03:04:05.678 [NEW]     tcp  ${r.orig.src}:${r.orig.sport} -> ${r.orig.dst}:${r.orig.dport}  reply ${r.reply.src}:${r.reply.sport} -> ${r.reply.dst}:${r.reply.dport}  SYN_SENT snat id=${r.id}`,
    );
  });
});

describe('nflog fixture: three packets in one datagram', () => {
  const f = readFixture('nflog-ipv4-batch3');
  const batch = addon.decodeForTest('nflog', f.bytes, TS);
  const h = readHeader(batch);
  const view = new NflogBatchView().reset(batch, h.count);

  it('decodes prefix, group, hook, tuple, length and consecutive sequence numbers', () => {
    expect(h.kind).toBe(BATCH_NFLOG);
    expect(h.count).toBe(3);
    expect(h.decodeErrors).toBe(0);
    expect(h.seqGap).toBe(0);
    const ports = new Set<number>();
    for (let i = 0; i < 3; i++) {
      const e = view.seek(i).toEvent();
      expect(e).toMatchObject({ group: 5, prefix: 'blocked-9999 ', family: 'ipv4', proto: 'tcp', src: '192.0.2.5', dst: '198.51.100.8', dport: 9999, hook: 2, mark: 0 });
      expect(e.len).toBeGreaterThanOrEqual(40);
      // decodeForTest does not resolve names: the ifindex stands in, as text.
      expect(e.indev).toMatch(/^\d+$/);
      expect(e.outdev).toMatch(/^\d+$/);
      ports.add(e.sport);
      if (i > 0) expect(view.seq).toBe(view.seek(i - 1).seq + 1);
    }
    expect(ports.size).toBe(3);
  });

  it('reports a sequence gap when a packet is missing', () => {
    // Drop the middle message of the datagram: the third's seq is then two ahead.
    const msgs: Buffer[] = [];
    for (let off = 0; off + 16 <= f.bytes.length; ) {
      const len = f.bytes.readUInt32LE(off);
      msgs.push(f.bytes.subarray(off, off + ((len + 3) & ~3)));
      off += (len + 3) & ~3;
    }
    const gapped = addon.decodeForTest('nflog', Buffer.concat([msgs[0]!, ...msgs.slice(2)]), TS);
    const gh = readHeader(gapped);
    expect(gh.count).toBe(2);
    expect(gh.seqGap).toBe(1);
  });

  it('formats a text line', () => {
    expect(formatNflog(view.seek(0))).toMatch(/^03:04:05\.678 \[NFLOG\] {3}group=5 "blocked-9999" tcp 192\.0\.2\.5:\d+ -> 198\.51\.100\.8:9999 in=\d+ out=\d+ len=\d+$/);
  });
});

describe('stats fixture', () => {
  it('sums the per-CPU counters exactly as conntrack -S lists them', () => {
    const f = readFixture('stats-cpu');
    const s = readStats(addon.decodeForTest('stats', f.bytes));
    const ref = sumStats(f.refs);
    expect(s.cpus).toBe(f.refs.length);
    for (const k of Object.keys(s.counters) as Array<keyof typeof s.counters>) expect(s.counters[k]).toBe(ref[k]);
    expect(s.counters.insert_failed).toBeGreaterThan(0);
  });
});
