// The NFLOG fixtures captured for the decoder's less travelled paths (they also seed the fuzz
// targets): the longest prefix nft accepts, ICMP/ICMPv6 echo ids, and IPv6 extension headers
// (hop-by-hop, destination options, first and later fragments) logged before defrag.
import { describe, expect, it } from 'vitest';
import { NflogBatchView, readHeader } from '../../src/source/codec.js';
import { loadNative } from '../../src/source/native.js';
import { readFixture } from '../fixtures/fixtures.js';

const addon = loadNative();

function nflog(name: string) {
  const f = readFixture(name);
  const batch = addon.decodeForTest('nflog', f.bytes);
  const h = readHeader(batch);
  expect(h.decodeErrors).toBe(0);
  expect(h.unknownAttrs).toBe(0);
  const v = new NflogBatchView().reset(batch, h.count);
  const recs = Array.from({ length: h.count }, (_, i) => {
    v.seek(i);
    return { family: v.family, proto: v.proto, src: v.src(), dst: v.dst(), sport: v.sport, dport: v.dport, len: v.len, prefix: v.prefix() };
  });
  return { recs, refs: f.refs };
}

describe('NFLOG edge fixtures through the C++ decoder', () => {
  it('nflog-prefix-max: all 127 characters of the longest prefix, nothing past them', () => {
    const { recs, refs } = nflog('nflog-prefix-max');
    const prefix = /prefix=(\S+)/.exec(refs[0]!)![1]!;
    expect(prefix).toHaveLength(127);
    expect(recs).toEqual([expect.objectContaining({ family: 4, proto: 17, src: '192.0.2.5', dst: '198.51.100.8', dport: 9997, prefix })]);
  });

  it('nflog-icmp-echo: the echo id in both port fields, IPv4 and IPv6', () => {
    const { recs } = nflog('nflog-icmp-echo');
    expect(recs).toEqual([
      expect.objectContaining({ family: 4, proto: 1, src: '192.0.2.5', dst: '198.51.100.8', sport: 20055, dport: 20055, prefix: 'echo ' }),
      expect.objectContaining({ family: 6, proto: 58, src: '2001:db8:1::5', dst: '2001:db8:2::8', sport: 20055, dport: 20055, prefix: 'echo6 ' }),
    ]);
  });

  it('nflog-ipv6-exthdr: UDP found behind hop-by-hop + dest options and in the first fragment; later fragments have no ports', () => {
    const { recs } = nflog('nflog-ipv6-exthdr');
    const common = { family: 6, proto: 17, src: '2001:db8:1::5', dst: '2001:db8:2::8', prefix: 'exthdr ' };
    expect(recs).toHaveLength(4);
    expect(recs[0]).toMatchObject({ ...common, dport: 9996, len: 40 + 8 + 8 + 8 + 8 }); // + hbh + dstopts + udp + 8 bytes
    expect(recs[1]).toMatchObject({ ...common, dport: 9996 });
    expect(recs[1]!.sport).toBeGreaterThan(0);
    for (const r of recs.slice(2)) expect(r).toMatchObject({ ...common, sport: 0, dport: 0 });
    // The fragments' payload lengths add up to the 3000-byte datagram + its UDP header + 3 fragment headers.
    expect(recs.slice(1).reduce((s, r) => s + r.len - 40, 0)).toBe(3000 + 8 + 3 * 8);
  });
});
