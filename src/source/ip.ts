// Addresses: text from bytes (RFC 5952 for IPv6), and the arithmetic capacity matching needs
// (rule address ranges). The arithmetic is not on the event path: it runs when a key is first
// seen or the ruleset changes.
/**
 * Address text → its 32-bit words in network order (one for IPv4, four for IPv6), null if it is
 * not an address: dotted quad; hex groups with at most one '::', optionally ending in a dotted
 * quad (`::ffff:192.0.2.1`). The one parser: views over text, configured addresses, rule ranges.
 */
export function addrWords(text: string): number[] | null {
  const dotted = (t: string): number | null => {
    const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(t);
    if (!m) return null;
    const b = m.slice(1).map(Number);
    if (b.some((x) => x > 255)) return null;
    return ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
  };
  if (!text.includes(':')) {
    const v = dotted(text);
    return v === null ? null : [v];
  }
  let t = text;
  const tail4 = /^(.*:)(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/.exec(t);
  if (tail4) {
    const v = dotted(tail4[2]!);
    if (v === null) return null;
    t = `${tail4[1]}${(v >>> 16).toString(16)}:${(v & 0xffff).toString(16)}`;
  }
  const halves = t.split('::');
  if (halves.length > 2) return null;
  const part = (s: string) => (s === '' ? [] : s.split(':'));
  const head = part(halves[0]!);
  const tail = halves.length === 2 ? part(halves[1]!) : [];
  const fill = 8 - head.length - tail.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) return null;
  const groups = [...head, ...Array<string>(halves.length === 2 ? fill : 0).fill('0'), ...tail];
  if (!groups.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return null;
  const g = groups.map((x) => parseInt(x, 16));
  return [0, 1, 2, 3].map((i) => ((g[2 * i]! << 16) | g[2 * i + 1]!) >>> 0);
}

/** Address as a bigint (IPv4 as its 32-bit value), or null when not an address. */
function ipValue(ip: string): bigint | null {
  const w = addrWords(ip);
  return w === null ? null : w.reduce((v, x) => (v << 32n) | BigInt(x), 0n);
}

export const ipFamily = (ip: string): 4 | 6 | 0 => {
  const w = addrWords(ip);
  return w === null ? 0 : w.length === 1 ? 4 : 6;
};

/** Inclusive address range. */
export interface AddrRange {
  lo: string;
  hi: string;
}

/** `a.b.c.d/len` (or v6) to a range; null if malformed. */
export function prefixRange(addr: string, len: number): AddrRange | null {
  const v = ipValue(addr);
  if (v === null) return null;
  const bits = ipFamily(addr) === 4 ? 32 : 128;
  if (len < 0 || len > bits) return null;
  const host = (1n << BigInt(bits - len)) - 1n;
  return { lo: fromValue((v & ~host) & ((1n << BigInt(bits)) - 1n), bits), hi: fromValue(v | host, bits) };
}

function fromValue(v: bigint, bits: number): string {
  if (bits === 32) return [24n, 16n, 8n, 0n].map((s) => String((v >> s) & 255n)).join('.');
  const g: number[] = [];
  for (let s = 112n; s >= 0n; s -= 16n) g.push(Number((v >> s) & 0xffffn));
  return formatGroups(g);
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
