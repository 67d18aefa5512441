import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { addrText, addrWords } from '../../src/source/codec.js';
import { CtKind, type ConntrackView } from '../../src/source/types.js';
import { SyntheticSource, plainFlow, snatFlow, type SynthCt } from '../../src/source/synthetic.js';
import { Occupancy } from '../../src/track/occupancy.js';
import { Tracker } from '../../src/track/tracker.js';

describe('addrWords', () => {
  it('reads dotted quads and RFC 5952 text as network-order words', () => {
    expect(addrWords('192.0.2.1')).toEqual([0xc0000201]);
    expect(addrWords('255.255.255.255')).toEqual([0xffffffff]);
    expect(addrWords('2001:db8::1')).toEqual([0x20010db8, 0, 0, 1]);
    expect(addrWords('::')).toEqual([0, 0, 0, 0]);
    expect(addrWords('2001:db8:0:1:2:3:4:5')).toEqual([0x20010db8, 0x00000001, 0x00020003, 0x00040005]);
    for (const bad of ['192.0.2', '192.0.2.256', '1::2::3', '2001:db8:0:1:2:3:4:5:6', 'g::1', '', 'host']) {
      expect(addrWords(bad), bad).toBeNull();
    }
  });

  it('inverts the codec formatter for every address', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 4, maxLength: 4 }), fc.boolean(), (w, v6) => {
        const dv = new DataView(new ArrayBuffer(16));
        w.forEach((x, i) => dv.setUint32(i * 4, x, false));
        expect(addrWords(addrText(dv, 0, v6 ? 6 : 4))).toEqual(v6 ? w : [w[0]]);
      }),
    );
  });
});

describe('Occupancy IPv4 index', () => {
  it('finds every key added by number, forgets released ones, and survives growth and id reuse', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 400 })), { maxLength: 600 }), (ops) => {
        const occ = new Occupancy();
        const model = new Map<number, number>(); // key number -> id
        const parts = (n: number) => ({ meta: Occupancy.metaV4(n % 2 ? 6 : 17, n % 7, n % 3 === 0), nat: 0xcb007100 + (n % 5), dst: 0xc6336400 + n });
        for (const [add, n] of ops) {
          const p = parts(n);
          if (add && !model.has(n)) {
            const k = occ.internV4(p.meta, p.nat, p.dst, `k${n}`);
            model.set(n, k);
          } else if (!add && model.has(n)) {
            occ.release(model.get(n)!);
            model.delete(n);
          }
        }
        for (let n = 0; n <= 400; n++) {
          const p = parts(n);
          expect(occ.findV4(p.meta, p.nat, p.dst)).toBe(model.get(n) ?? -1);
        }
      }),
      { numRuns: 50 },
    );
  });
});

describe('Occupancy IPv4 index: the last key found is tried first', () => {
  it('never answers with a forgotten key, nor with its id reused by another key', () => {
    const occ = new Occupancy();
    const meta = Occupancy.metaV4(6, 80, false);
    const a = occ.internV4(meta, 0xcb007101, 0xc6336408, 'tcp|203.0.113.1|198.51.100.8|80|N');
    expect(occ.findV4(meta, 0xcb007101, 0xc6336408)).toBe(a); // now the guess
    occ.release(a);
    expect(occ.findV4(meta, 0xcb007101, 0xc6336408)).toBe(-1);
    const b = occ.internV4(meta, 0xcb007101, 0xc6336409, 'tcp|203.0.113.1|198.51.100.9|80|N');
    expect(b).toBe(a); // the id is reused
    expect(occ.findV4(meta, 0xcb007101, 0xc6336408)).toBe(-1);
    expect(occ.findV4(meta, 0xcb007101, 0xc6336409)).toBe(b);
    const c = occ.internV4(meta, 0xcb007101, 0xc633640a, 'tcp|203.0.113.1|198.51.100.10|80|N');
    expect([occ.findV4(meta, 0xcb007101, 0xc633640a), occ.findV4(meta, 0xcb007101, 0xc6336409), occ.findV4(meta, 0xcb007101, 0xc633640a)]).toEqual([c, b, c]);
    // The IPv6 key's id has no words: never a guess's match.
    occ.release(c);
    const v6 = occ.intern('tcp|2001:db8::1|2001:db8::8|80|N');
    expect(v6).toBe(c);
    expect(occ.findV4(meta, 0xcb007101, 0xc633640a)).toBe(-1);
  });
});

describe('Occupancy keys by text and by number', () => {
  it('an IPv4 key interned by text is the one found by number, and released from both', () => {
    const occ = new Occupancy();
    const text = 'tcp|203.0.113.1|198.51.100.8|80|N';
    const k = occ.intern(text);
    const meta = Occupancy.metaV4(6, 80, false);
    expect(occ.findV4(meta, 0xcb007101, 0xc6336408)).toBe(k);
    expect(occ.idOf(text)).toBe(k);
    expect(occ.intern(text)).toBe(k);
    expect(occ.findV4(Occupancy.metaV4(6, 80, true), 0xcb007101, 0xc6336408)).toBe(-1);
    const local = occ.internV4(Occupancy.metaV4(17, 53, true), 0xc0000201, 0xc6336408, 'udp|192.0.2.1|198.51.100.8|53|L');
    expect(occ.idOf('udp|192.0.2.1|198.51.100.8|53|L')).toBe(local);
    expect(occ.isLocal(local)).toBe(true);
    // Not keyString's text: a key of its own, by text only.
    const odd = occ.intern('tcp|203.0.113.01|198.51.100.8|80|N');
    expect(odd).not.toBe(k);
    const v6 = occ.intern('tcp|2001:db8::1|2001:db8::8|80|N');
    expect(occ.idOf('tcp|2001:db8::1|2001:db8::8|80|N')).toBe(v6);
    expect(occ.count).toBe(4);
    occ.release(k);
    expect(occ.idOf(text)).toBe(-1);
    expect(occ.findV4(meta, 0xcb007101, 0xc6336408)).toBe(-1);
    expect(occ.intern(text)).toBe(k); // the released id, reused
  });
});

/** The same view without addrWord: the tracker's text path. */
function textOnly(v: ConntrackView): ConntrackView {
  return new Proxy(v, {
    get: (t, p) => (p === 'addrWord' ? undefined : typeof Reflect.get(t, p) === 'function' ? (...a: unknown[]) => (Reflect.get(t, p) as (...x: unknown[]) => unknown).apply(t, a) : Reflect.get(t, p)),
  });
}

describe('Tracker keys by number and by text', () => {
  it('give the same keys, counts and ports', () => {
    const recs: SynthCt[] = [];
    for (let id = 1; id <= 300; id++) {
      const dst = `198.51.100.${1 + (id % 9)}`;
      if (id % 3 === 0) recs.push(plainFlow(CtKind.New, id, { src: '192.0.2.1', sport: 1000 + id, dst, dport: 80 + (id % 2) }));
      else if (id % 3 === 1) recs.push(snatFlow(CtKind.New, id, { src: '192.0.2.5', sport: 2000 + id, dst, dport: 443, natIp: '203.0.113.1', natPort: 3000 + (id % 50), proto: 17 }));
      else recs.push(plainFlow(CtKind.New, id, { src: '192.0.2.50', sport: 1000 + id, dst, dport: 80 }));
      if (id % 4 === 0) recs.push({ ...recs[recs.length - 1]!, kind: CtKind.Destroy });
      // IPv6 keys take the text path either way.
      if (id % 10 === 0) recs.push(snatFlow(CtKind.New, 10_000 + id, { src: '2001:db8::5', sport: 10 + id, dst: '2001:db8:1::8', dport: 80, natIp: '2001:db8::1', natPort: 5000 + id, family: 6 }));
    }
    const run = (wrap: (v: ConntrackView) => ConntrackView) => {
      const src = new SyntheticSource({ now: () => 1_000_000 });
      const tracker = new Tracker({ localAddrs: ['192.0.2.1', '2001:db8::9'], ringKeys: 4 });
      void src.start({ conntrack: (v) => tracker.onConntrack(wrap(v), 1000), nflog: () => {}, loss: () => {}, error: () => {}, dumpBegin: () => {}, dumpEnd: () => {} });
      src.conntrack(recs);
      return { keys: tracker.keys.snapshot(), live: tracker.liveFlows };
    };
    const byNumber = run((v) => v);
    const byText = run(textOnly);
    expect(byNumber.keys.size).toBe(10); // 6 local, 3 SNAT IPv4, 1 SNAT IPv6
    expect(byNumber.keys.has('tcp|192.0.2.1|198.51.100.1|80|L')).toBe(true);
    expect(byNumber.keys.has('udp|203.0.113.1|198.51.100.2|443|N')).toBe(true);
    expect(byNumber.keys.has('tcp|2001:db8::1|2001:db8:1::8|80|N')).toBe(true);
    expect(byNumber).toEqual(byText);
  });
});
