// Addresses: text from bytes (RFC 5952 for IPv6), and the arithmetic capacity matching needs
// (rule address ranges). The arithmetic is not on the event path: it runs when a key is first
// seen or the ruleset changes.
import { isIPv4, isIPv6 } from 'node:net';

/** Address as a bigint (IPv4 as its 32-bit value), or null when not an address. */
function ipValue(ip: string): bigint | null {
  if (isIPv4(ip)) {
    const p = ip.split('.');
    return BigInt(((+p[0]! << 24) | (+p[1]! << 16) | (+p[2]! << 8) | +p[3]!) >>> 0);
  }
  if (!isIPv6(ip)) return null;
  let s = ip;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const n = Number(ipValue(v4[1]!));
    s = s.slice(0, -v4[1]!.length) + `${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const [a, b] = s.split('::');
  const left = a ? a.split(':') : [];
  const right = b !== undefined && b !== '' ? b.split(':') : [];
  const groups = b === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  let v = 0n;
  for (const g of groups) v = (v << 16n) | BigInt(parseInt(g, 16));
  return v;
}

export const ipFamily = (ip: string): 4 | 6 | 0 => (isIPv4(ip) ? 4 : isIPv6(ip) ? 6 : 0);

/** Inclusive address range. */
export interface AddrRange {
  lo: string;
  hi: string;
}

/** `a.b.c.d/len` (or v6) to a range; null if malformed. */
export function prefixRange(addr: string, len: number): AddrRange | null {
  const v = ipValue(addr);
  if (v === null) return null;
  const bits = isIPv4(addr) ? 32 : 128;
  if (len < 0 || len > bits) return null;
  const host = (1n << BigInt(bits - len)) - 1n;
  return { lo: fromValue((v & ~host) & ((1n << BigInt(bits)) - 1n), bits), hi: fromValue(v | host, bits) };
}

function fromValue(v: bigint, bits: number): string {
  if (bits === 32) return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 255n)).join('.');
  const g: string[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) g.push(((v >> s) & 0xffffn).toString(16));
  return g.join(':');
}

export function inRange(ip: string, r: AddrRange): boolean {
  const v = ipValue(ip);
  const lo = ipValue(r.lo);
  const hi = ipValue(r.hi);
  if (v === null || lo === null || hi === null || ipFamily(ip) !== ipFamily(r.lo)) return false;
  return v >= lo && v <= hi;
}

export function rangeSize(r: AddrRange): number {
  const lo = ipValue(r.lo);
  const hi = ipValue(r.hi);
  if (lo === null || hi === null || hi < lo) return 0;
  const n = hi - lo + 1n;
  return n > 65535n ? 65535 : Number(n);
}

/** Address text from its 4 (IPv4) or 16 (IPv6) bytes in network order. */
export function formatBytes(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push((b[i * 2]! << 8) | b[i * 2 + 1]!);
  return formatGroups(g);
}

/** RFC 5952 text of eight 16-bit groups: lowercase, the longest run (≥ 2) of zero groups compressed, the first on a tie. */
export function formatGroups(g: readonly number[]): string {
  let bestAt = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      bestAt = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number, b: number) => g.slice(a, b).map((x) => x.toString(16)).join(':');
  if (bestAt < 0) return hex(0, 8);
  return `${hex(0, bestAt)}::${hex(bestAt + bestLen, 8)}`;
}
