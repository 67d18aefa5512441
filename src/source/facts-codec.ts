// Decodes the addon's kernel-facts buffer (native/facts-writer.h: items of u16 type, u16
// length, payload padded to 4, host byte order) into plain records: tables, chains, rules with
// what each rule matches and does, set elements, links, addresses, sockets, sysctls and
// per-section errors. Layout constants here mirror facts-writer.h; docs/kernel-facts.md
// describes the items.
import { formatBytes } from './ip.js';

export const ITEM = {
  table: 1,
  chain: 2,
  rule: 3,
  oif: 4,
  proto: 5,
  nat: 6,
  log: 7,
  verdict: 8,
  ct: 9,
  xtMatch: 10,
  xtTarget: 11,
  lookup: 12,
  setElem: 13,
  link: 20,
  addr: 21,
  sock: 30,
  sockCount: 31,
  sysctl: 40,
  error: 50,
  decodeErrors: 51,
} as const;

export const SECTION_NAMES: Record<number, FactSection> = { 1: 'nft', 2: 'iptables-legacy', 3: 'ip6tables-legacy', 4: 'rtnl', 5: 'diag', 6: 'sysctl' };
export type FactSection = 'nft' | 'iptables-legacy' | 'ip6tables-legacy' | 'rtnl' | 'diag' | 'sysctl';

/** NFPROTO_* → nft family name. */
export const FAMILY_NAMES: Record<number, string> = { 1: 'inet', 2: 'ip', 3: 'arp', 5: 'netdev', 7: 'bridge', 10: 'ip6' };

export const NAT_TYPES = ['snat', 'dnat', 'masquerade', 'redirect', 'netmap'] as const;
export type NatType = (typeof NAT_TYPES)[number];

/** Where a NAT operand came from (facts-writer.h RegSrc). */
export const SRC = { none: 0, imm: 1, map: 2, meta: 3, payload: 4, ct: 5, other: 6 } as const;

export const VERDICT = { drop: 0, accept: 1, continue: -1, break: -2, jump: -3, goto: -4, return: -5, reject: 1000 } as const;

export interface NatOperand {
  /** SRC.* */
  src: number;
  /** The constant (address text or port) when src is imm. */
  value: string | number | null;
  /** Byte offset in the map's data when src is map. */
  mapOffset: number;
}

export interface NatStatement {
  type: NatType;
  /** NFPROTO of the addresses: 2 IPv4, 10 IPv6, 0 unknown (inet without `ip`/`ip6`). */
  nfproto: number;
  viaXt: boolean;
  flags: number;
  addrMin: NatOperand;
  addrMax: NatOperand;
  portMin: NatOperand;
  portMax: NatOperand;
  /** The map that data operands come from. */
  map: { table: string; set: string } | null;
}

export interface RuleFacts {
  family: string;
  origin: 'nft' | 'legacy';
  table: string;
  chain: string;
  handle: number;
  oif: Array<{ neq: boolean; name: string | null; index: number | null; prefix: boolean }>;
  protos: Array<{ neq: boolean; proto: number }>;
  nat: NatStatement[];
  logs: Array<{ group: number | null; prefix: string }>;
  /** Terminal verdicts and jumps, in order (VERDICT codes). */
  verdicts: Array<{ code: number; chain: string }>;
  /** ct expression keys (0xff: connlimit / flow offload). */
  ct: number[];
  xtMatches: string[];
  xtTargets: string[];
  lookups: Array<{ isMap: boolean; keySrc: number; keyKey: number; table: string; set: string }>;
}

export interface ChainFacts {
  family: string;
  origin: 'nft' | 'legacy';
  table: string;
  name: string;
  /** NF_INET_* hook number, null for a regular chain. */
  hook: number | null;
  prio: number;
  type: string;
}

export interface SetElem {
  family: string;
  table: string;
  set: string;
  intervalEnd: boolean;
  key: Uint8Array;
  keyEnd: Uint8Array;
  data: Uint8Array;
}

export interface SocketFacts {
  family: 4 | 6;
  proto: number;
  state: number;
  src: string;
  sport: number;
  dst: string;
  dport: number;
}

/** Connected sockets of the host per (family, proto, src, dst, dport), counted by the addon. */
export interface SocketCount {
  family: 4 | 6;
  proto: number;
  src: string;
  dst: string;
  dport: number;
  count: number;
}

export interface FactError {
  section: FactSection;
  errno: number;
  what: string;
}

export interface KernelFacts {
  tables: Array<{ family: string; origin: 'nft' | 'legacy'; name: string }>;
  chains: ChainFacts[];
  rules: RuleFacts[];
  setElems: SetElem[];
  links: Map<number, string>;
  addrs: Array<{ ifindex: number; family: 4 | 6; prefixLen: number; scope: number; addr: string }>;
  sockets: SocketFacts[];
  socketCounts: SocketCount[];
  sysctls: Map<string, string>;
  errors: FactError[];
  decodeErrors: Partial<Record<FactSection, number>>;
}

const dec = new TextDecoder();

function str(b: Uint8Array, off: number, end: number): string {
  return dec.decode(b.subarray(off, end));
}

/** NUL-terminated strings from off; returns them and the offset after the last. */
function strz(b: Uint8Array, off: number, end: number, n: number): [string[], number] {
  const out: string[] = [];
  let p = off;
  for (let i = 0; i < n; i++) {
    let z = p;
    while (z < end && b[z] !== 0) z++;
    out.push(str(b, p, z));
    p = Math.min(z + 1, end);
  }
  return [out, p];
}

function addrText(b: Uint8Array, off: number, family: 4 | 6): string {
  return formatBytes(b.subarray(off, off + (family === 4 ? 4 : 16)));
}

function operand(b: Uint8Array, dv: DataView, base: number, i: number, nfproto: number): NatOperand {
  const src = b[base + 8 + i]!;
  const mapOffset = b[base + 12 + i]!;
  let value: string | number | null = null;
  if (src === SRC.imm) {
    if (i < 2) value = addrText(b, base + 20 + i * 16, nfproto === 10 ? 6 : 4);
    else value = dv.getUint16(base + 16 + (i - 2) * 2, true);
  }
  return { src, value, mapOffset };
}

export function decodeFacts(buf: Uint8Array): KernelFacts {
  const out: KernelFacts = { tables: [], chains: [], rules: [], setElems: [], links: new Map(), addrs: [], sockets: [], socketCounts: [], sysctls: new Map(), errors: [], decodeErrors: {} };
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let rule: RuleFacts | null = null;
  let off = 0;
  while (buf.length - off >= 4) {
    const type = dv.getUint16(off, true);
    const len = dv.getUint16(off + 2, true);
    const p = off + 4;
    const end = p + len;
    if (end > buf.length) throw new Error(`kernel facts: item ${type} overruns the buffer`);
    off = end + ((4 - (len % 4)) % 4);
    const family = (): string => FAMILY_NAMES[buf[p]!] ?? String(buf[p]);
    const origin = (): 'nft' | 'legacy' => (buf[p + 1] === 1 ? 'legacy' : 'nft');
    switch (type) {
      case ITEM.table:
        rule = null;
        out.tables.push({ family: family(), origin: origin(), name: str(buf, p + 4, end) });
        break;
      case ITEM.chain: {
        rule = null;
        const [[table, name, ctype]] = strz(buf, p + 12, end, 3) as [[string, string, string], number];
        out.chains.push({ family: family(), origin: origin(), table, name, hook: buf[p + 2] ? dv.getUint32(p + 4, true) : null, prio: dv.getInt32(p + 8, true), type: ctype });
        break;
      }
      case ITEM.rule: {
        const [[table, chain]] = strz(buf, p + 16, end, 2) as [[string, string], number];
        rule = {
          family: family(), origin: origin(), table, chain, handle: Number(dv.getBigUint64(p + 8, true)),
          oif: [], protos: [], nat: [], logs: [], verdicts: [], ct: [], xtMatches: [], xtTargets: [], lookups: [],
        };
        out.rules.push(rule);
        break;
      }
      case ITEM.oif:
        rule?.oif.push({ neq: buf[p] === 1, name: buf[p + 1] === 0 ? str(buf, p + 4, end) : null, index: buf[p + 1] === 1 ? dv.getUint32(p + 4, true) : null, prefix: buf[p + 2] === 1 });
        break;
      case ITEM.proto:
        rule?.protos.push({ neq: buf[p] === 1, proto: buf[p + 1]! });
        break;
      case ITEM.nat: {
        if (len < 52) break;
        const nfproto = buf[p + 1]!;
        const map = len > 52 ? strz(buf, p + 52, end, 2)[0] : null;
        rule?.nat.push({
          type: NAT_TYPES[buf[p]!] ?? 'snat',
          nfproto,
          viaXt: buf[p + 2] === 1,
          flags: dv.getUint32(p + 4, true),
          addrMin: operand(buf, dv, p, 0, nfproto),
          addrMax: operand(buf, dv, p, 1, nfproto),
          portMin: operand(buf, dv, p, 2, nfproto),
          portMax: operand(buf, dv, p, 3, nfproto),
          map: map ? { table: map[0]!, set: map[1]! } : null,
        });
        break;
      }
      case ITEM.log:
        rule?.logs.push({ group: buf[p] ? dv.getUint16(p + 2, true) : null, prefix: str(buf, p + 4, end).replace(/\0.*$/s, '') });
        break;
      case ITEM.verdict:
        rule?.verdicts.push({ code: dv.getInt32(p, true), chain: str(buf, p + 4, end) });
        break;
      case ITEM.ct:
        rule?.ct.push(buf[p]!);
        break;
      case ITEM.xtMatch:
        rule?.xtMatches.push(str(buf, p + 4, end).replace(/\0.*$/s, ''));
        break;
      case ITEM.xtTarget:
        rule?.xtTargets.push(str(buf, p + 4, end).replace(/\0.*$/s, ''));
        break;
      case ITEM.lookup: {
        const [[table, set]] = strz(buf, p + 4, end, 2) as [[string, string], number];
        rule?.lookups.push({ isMap: buf[p + 1] === 1, keySrc: buf[p + 2]!, keyKey: buf[p + 3]!, table, set });
        break;
      }
      case ITEM.setElem: {
        const kl = dv.getUint16(p + 4, true);
        const kel = dv.getUint16(p + 6, true);
        const dl = dv.getUint16(p + 8, true);
        const [[table, set], q] = strz(buf, p + 12, end, 2) as [[string, string], number];
        if (q + kl + kel + dl > end) break;
        out.setElems.push({
          family: family(), table, set, intervalEnd: buf[p + 1] === 1,
          key: buf.slice(q, q + kl), keyEnd: buf.slice(q + kl, q + kl + kel), data: buf.slice(q + kl + kel, q + kl + kel + dl),
        });
        break;
      }
      case ITEM.link:
        out.links.set(dv.getUint32(p, true), str(buf, p + 4, end).replace(/\0.*$/s, ''));
        break;
      case ITEM.addr: {
        const fam = buf[p + 4] === 6 ? 6 : 4;
        out.addrs.push({ ifindex: dv.getUint32(p, true), family: fam, prefixLen: buf[p + 5]!, scope: buf[p + 6]!, addr: addrText(buf, p + 8, fam) });
        break;
      }
      case ITEM.sock: {
        const fam = buf[p] === 6 ? 6 : 4;
        out.sockets.push({ family: fam, proto: buf[p + 1]!, state: buf[p + 2]!, sport: dv.getUint16(p + 4, true), dport: dv.getUint16(p + 6, true), src: addrText(buf, p + 8, fam), dst: addrText(buf, p + 24, fam) });
        break;
      }
      case ITEM.sockCount: {
        const fam = buf[p] === 6 ? 6 : 4;
        out.socketCounts.push({ family: fam, proto: buf[p + 1]!, dport: dv.getUint16(p + 2, true), count: dv.getUint32(p + 4, true), src: addrText(buf, p + 8, fam), dst: addrText(buf, p + 24, fam) });
        break;
      }
      case ITEM.sysctl: {
        const [[name], q] = strz(buf, p, end, 1) as [[string], number];
        out.sysctls.set(name, str(buf, q, end).trim().replace(/\s+/g, ' '));
        break;
      }
      case ITEM.error:
        out.errors.push({ section: SECTION_NAMES[buf[p]!] ?? 'nft', errno: dv.getInt32(p + 4, true), what: str(buf, p + 8, end) });
        break;
      case ITEM.decodeErrors: {
        const s = SECTION_NAMES[buf[p]!] ?? 'nft';
        out.decodeErrors[s] = (out.decodeErrors[s] ?? 0) + dv.getUint32(p + 4, true);
        break;
      }
      default:
        break; // a newer addon's item: skipped by its length
    }
  }
  return out;
}
