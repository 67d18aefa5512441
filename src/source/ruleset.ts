// A namespace's NAT configuration, read from the kernel (native/kernel-facts.cc): source NAT
// statements (capacity), the NFLOG groups its log statements name (and whether those rules
// drop), the rules that keep conntrack in use (doctor), and its interface addresses (masquerade
// takes the outgoing interface's address; the host's own flows come from them). No external
// program is run: nf_tables is dumped over netlink (native nft, and iptables-nft's compat
// targets with their x_tables payloads), iptables-legacy through getsockopt.
//
// One model for everyone: serve's capacity resolver, doctor and the lab all take a Ruleset.
import { NatwatchError } from '../errors.js';
import { netnsError } from '../netns.js';
import { decodeFacts, SRC, VERDICT, type KernelFacts, type NatOperand, type NatStatement, type RuleFacts, type SetElem } from './facts-codec.js';
import { formatBytes, rangeSize, type AddrRange } from './ip.js';
import { errnoName, loadNative } from './native.js';
import { protoName } from './names.js';

/** A source NAT statement found in the ruleset. */
export interface DetectedNat {
  kind: 'masquerade' | 'snat';
  /** nft family: ip, ip6 or inet (iptables: ip / ip6). */
  family: string;
  /** Protocols the rule is limited to (null: any). */
  protos: string[] | null;
  /** Output interface the rule matches (`eth*` for a prefix); masquerade takes its address. */
  oifname: string | null;
  /** snat target addresses; null for masquerade or a target we cannot read. */
  addrs: AddrRange[] | null;
  ports: [number, number] | null;
  origin: 'nft' | 'iptables' | 'iptables-legacy';
  /** `family table chain`, for messages. */
  where?: string;
}

/** A rule with a `log group N` statement (nft) or an NFLOG target (iptables). */
export interface LogRule {
  group: number;
  prefix: string;
  /** The same rule drops or rejects what it logs (ECS event.type: denied). */
  denies: boolean;
  where: string;
}

export interface Ruleset {
  /** Source NAT (masquerade, snat), in ruleset order. */
  nat: DetectedNat[];
  /** Every NAT rule (also dnat / redirect / netmap) as one line of text, for doctor. */
  natRules: Array<{ kind: string; ports: [number, number] | null; addresses: number; text: string }>;
  /** NFLOG groups named by log statements / NFLOG targets, sorted, unique. */
  groups: number[];
  logs: LogRule[];
  /** Rules matching on conntrack without NAT (`ct state`, `-m conntrack`, `-m state`…). */
  ctRules: string[];
  /** Base chains of type nat. */
  natChains: number;
  ruleCount: number;
  /**
   * Parts that could not be read, one line each naming the cause (a missing capability). When
   * not empty, a NAT key no readable rule explains has an unknown capacity, never the default.
   */
  unreadable: string[];
  /**
   * The subset of `unreadable` for tables natwatch could not even list: iptables-legacy's
   * /proc/net/ip_tables_names (mode 0440, root) needs CAP_DAC_READ_SEARCH. The file exists only
   * when the kernel has that family's x_tables, so such tables may or may not be there.
   */
  unchecked?: string[];
  /**
   * The subsets of `unreadable` that concern one address family only (the legacy iptables and
   * ip6tables tables): a key of the other family does not depend on them.
   */
  ip4Only?: string[];
  ip6Only?: string[];
}

/** @deprecated name kept for embedders: the ruleset facts. */
export type RulesetInfo = Ruleset;

export const EMPTY_RULESET: Ruleset = { nat: [], natRules: [], groups: [], logs: [], ctRules: [], natChains: 0, ruleCount: 0, unreadable: [] };

const NFT_META_L4PROTO = 16; // linux/netfilter/nf_tables.h enum nft_meta_keys
const PAYLOAD_IP_PROTOCOL = (1 << 16) | 9; // network header, offset 9 (IPv4 protocol)
const PAYLOAD_IP6_NEXTHDR = (1 << 16) | 6;
const CT_MATCHES = new Set(['conntrack', 'state', 'connmark', 'connlimit', 'helper', 'connbytes', 'connlabel']);
const CT_TARGETS = new Set(['CONNMARK', 'CT', 'CONNSECMARK']);
const CT_KEYS: Record<number, string> = { 0: 'state', 1: 'direction', 2: 'status', 3: 'mark', 4: 'secmark', 5: 'expiration', 6: 'helper', 0xff: 'count' };

function setKey(family: string, table: string, set: string): string {
  return `${family}|${table}|${set}`;
}

function portAt(data: Uint8Array, off: number): number | null {
  return off + 2 <= data.length ? (data[off]! << 8) | data[off + 1]! : null;
}

/** The (addresses, ports) pairs one NAT statement can produce (several through a map). */
function natTargets(n: NatStatement, elems: Map<string, SetElem[]>, family: string): Array<{ addrs: AddrRange[] | null; ports: [number, number] | null }> {
  const alen = n.nfproto === 10 || (n.nfproto === 0 && family === 'ip6') ? 16 : 4;
  const portsFrom = (lo: NatOperand, hi: NatOperand, data: Uint8Array | null): [number, number] | null => {
    if (lo.src === SRC.imm && typeof lo.value === 'number') {
      const b = hi.src === SRC.imm && typeof hi.value === 'number' ? hi.value : lo.value;
      return [lo.value, b];
    }
    if (lo.src === SRC.map && data) {
      const a = portAt(data, lo.mapOffset);
      const b = hi.src === SRC.map ? portAt(data, hi.mapOffset) : a;
      return a !== null && b !== null ? [a, b] : null;
    }
    return null;
  };
  const addrFrom = (lo: NatOperand, hi: NatOperand, data: Uint8Array | null): AddrRange[] | null => {
    if (lo.src === SRC.imm && typeof lo.value === 'string') {
      return [{ lo: lo.value, hi: hi.src === SRC.imm && typeof hi.value === 'string' ? hi.value : lo.value }];
    }
    if (lo.src === SRC.map && data && lo.mapOffset + alen <= data.length) {
      const a = formatBytes(data.subarray(lo.mapOffset, lo.mapOffset + alen));
      const b = hi.src === SRC.map && hi.mapOffset !== lo.mapOffset && hi.mapOffset + alen <= data.length ? formatBytes(data.subarray(hi.mapOffset, hi.mapOffset + alen)) : a;
      return [{ lo: a, hi: b }];
    }
    return null;
  };
  if (n.map) {
    const list = (elems.get(setKey(family, n.map.table, n.map.set)) ?? []).filter((e) => !e.intervalEnd && e.data.length > 0);
    if (list.length > 0) return list.map((e) => ({ addrs: addrFrom(n.addrMin, n.addrMax, e.data), ports: portsFrom(n.portMin, n.portMax, e.data) ?? portsFrom(n.portMin, n.portMax, null) }));
  }
  return [{ addrs: addrFrom(n.addrMin, n.addrMax, null), ports: portsFrom(n.portMin, n.portMax, null) }];
}

function protosOf(r: RuleFacts, elems: Map<string, SetElem[]>): string[] | null {
  const eq = r.protos.filter((p) => !p.neq).map((p) => protoName(p.proto));
  if (eq.length) return eq;
  for (const l of r.lookups) {
    const key = l.keySrc === SRC.meta ? l.keyKey === NFT_META_L4PROTO : false;
    if (l.isMap || !(key || (l.keySrc === SRC.payload && (l.keyKey === (PAYLOAD_IP_PROTOCOL & 0xff) || l.keyKey === (PAYLOAD_IP6_NEXTHDR & 0xff))))) continue;
    const list = (elems.get(setKey(r.family, l.table, l.set)) ?? []).filter((e) => e.key.length === 1).map((e) => protoName(e.key[0]!));
    if (list.length) return list;
  }
  return null;
}

function oifOf(r: RuleFacts, links: Map<number, string>): string | null {
  for (const o of r.oif) {
    if (o.neq) continue;
    const name = o.name ?? (o.index !== null ? (links.get(o.index) ?? null) : null);
    if (name === null) continue;
    return o.prefix ? `${name.replace(/\+$/, '')}*` : name;
  }
  return null;
}

function rangeText(p: [number, number] | null): string {
  return p ? `:${p[0]}${p[1] !== p[0] ? `-${p[1]}` : ''}` : '';
}

function addrCount(addrs: AddrRange[] | null): number {
  return addrs ? Math.max(1, addrs.reduce((n, a) => n + rangeSize(a), 0)) : 1;
}

/** Builds the ruleset model from decoded kernel facts (pure: unit tests feed it directly). */
export function buildRuleset(f: Pick<KernelFacts, 'chains' | 'rules' | 'setElems' | 'links' | 'errors'>): Ruleset {
  const elems = new Map<string, SetElem[]>();
  for (const e of f.setElems) {
    const k = setKey(e.family, e.table, e.set);
    const list = elems.get(k);
    if (list) list.push(e);
    else elems.set(k, [e]);
  }
  const out: Ruleset = { nat: [], natRules: [], groups: [], logs: [], ctRules: [], natChains: 0, ruleCount: f.rules.length, unreadable: [] };
  out.natChains = f.chains.filter((c) => c.type === 'nat' && c.hook !== null).length;
  const groups = new Set<number>();
  for (const r of f.rules) {
    const where = `${r.origin === 'legacy' ? 'legacy ' : ''}${r.family} ${r.table} ${r.chain}`;
    const protos = protosOf(r, elems);
    const oifname = oifOf(r, f.links);
    const denies = r.verdicts.some((v) => v.code === VERDICT.drop || v.code === VERDICT.reject);
    for (const l of r.logs) {
      if (l.group === null) continue;
      groups.add(l.group);
      out.logs.push({ group: l.group, prefix: l.prefix, denies, where });
    }
    for (const n of r.nat) {
      const family = n.nfproto === 2 ? 'ip' : n.nfproto === 10 ? 'ip6' : r.family;
      const origin: DetectedNat['origin'] = r.origin === 'legacy' ? 'iptables-legacy' : n.viaXt ? 'iptables' : 'nft';
      const targets = natTargets(n, elems, r.family);
      for (const t of targets) {
        const match = `${oifname ? `oifname "${oifname}" ` : ''}${protos ? `${protos.join(',')} ` : ''}`;
        const addrs = t.addrs?.map((a) => (a.lo === a.hi ? a.lo : `${a.lo}-${a.hi}`)).join(',');
        const v6 = family === 'ip6' && t.ports !== null;
        const to = n.type === 'masquerade' || n.type === 'redirect' ? rangeText(t.ports) : addrs ? `${v6 ? `[${addrs}]` : addrs}${rangeText(t.ports)}` : `(map @${n.map?.set ?? '?'})`;
        out.natRules.push({ kind: n.type, ports: t.ports, addresses: addrCount(t.addrs), text: `${where}: ${match}${n.type}${to ? ` to ${to}` : ''}${origin !== 'nft' ? ` (${origin})` : ''}` });
        if (n.type === 'masquerade' || n.type === 'snat') {
          out.nat.push({ kind: n.type, family, protos, oifname, addrs: n.type === 'snat' ? t.addrs : null, ports: t.ports, origin, where });
        }
      }
    }
    if (r.nat.length === 0) {
      const ct = r.ct.map((k) => `ct ${CT_KEYS[k] ?? k}`);
      const xt = [...r.xtMatches.filter((m) => CT_MATCHES.has(m)).map((m) => `-m ${m}`), ...r.xtTargets.filter((t) => CT_TARGETS.has(t)).map((t) => `-j ${t}`)];
      if (ct.length || xt.length) out.ctRules.push(`${where}: ${[...ct, ...xt].join(' ')}`);
    }
  }
  out.groups = [...groups].sort((a, b) => a - b);
  const { lines, unchecked, ip4Only, ip6Only } = unreadableLines(f.errors);
  out.unreadable = lines;
  if (unchecked.length) out.unchecked = unchecked;
  if (ip4Only.length) out.ip4Only = ip4Only;
  if (ip6Only.length) out.ip6Only = ip6Only;
  return out;
}

/** One line per section that could not be read, naming the capability it needs. */
function unreadableLines(errors: KernelFacts['errors']): { lines: string[]; unchecked: string[]; ip4Only: string[]; ip6Only: string[] } {
  const E = { EPERM: 1, EACCES: 13, EPROTONOSUPPORT: 93, EOPNOTSUPP: 95 };
  const lines: string[] = [];
  const unchecked: string[] = [];
  const ip4Only: string[] = [];
  const ip6Only: string[] = [];
  for (const e of errors) {
    // A kernel without nf_tables has no nft rules to miss.
    if (e.section === 'nft' && (e.errno === E.EOPNOTSUPP || e.errno === E.EPROTONOSUPPORT)) continue;
    if (e.section === 'nft') {
      lines.push(e.errno === E.EPERM || e.errno === E.EACCES ? 'nf_tables ruleset unreadable: need CAP_NET_ADMIN' : `nf_tables ruleset unreadable: ${e.what}: ${errnoName(e.errno)}`);
    } else if (e.section === 'iptables-legacy' || e.section === 'ip6tables-legacy') {
      const v4 = e.section === 'iptables-legacy';
      const file = v4 ? 'ip_tables_names' : 'ip6_tables_names';
      let line: string;
      if (e.what === 'tables-names' && (e.errno === E.EACCES || e.errno === E.EPERM)) {
        line = `${e.section} tables not checked: /proc/net/${file} is readable by root only (need CAP_DAC_READ_SEARCH)`;
        unchecked.push(line);
      } else {
        line = e.errno === E.EPERM || e.errno === E.EACCES ? `${e.section} tables unreadable: need CAP_NET_ADMIN` : `${e.section} tables unreadable: ${e.what}: ${errnoName(e.errno)}`;
      }
      lines.push(line);
      (v4 ? ip4Only : ip6Only).push(line);
    }
  }
  return { lines, unchecked, ip4Only, ip6Only };
}

/** Interface name → its addresses, from an rtnetlink dump. */
export function interfacesOf(f: Pick<KernelFacts, 'links' | 'addrs'>): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const name of f.links.values()) out.set(name, []);
  for (const a of f.addrs) {
    const name = f.links.get(a.ifindex) ?? `if${a.ifindex}`;
    const list = out.get(name);
    if (list) list.push(a.addr);
    else out.set(name, [a.addr]);
  }
  return out;
}

/** Namespace entry failures (the only ones kernelFacts throws) → one-line errors. */
export function mapFactsError(err: unknown, netns: string | null): Error {
  const e = err as { errno?: number; syscall?: string; message?: string };
  if (netns !== null && e?.syscall === 'open' && (e.errno === 2 || e.errno === 20)) return netnsError.missing(netns, err);
  if (netns !== null && e?.syscall === 'open' && e.errno === 13) return netnsError.denied(netns, err);
  if (e?.syscall === 'setns' && e.errno === 1) return new NatwatchError('EPERM', `need CAP_SYS_ADMIN to enter network namespace ${netns}`, { cause: err });
  if (netns !== null && e?.syscall === 'setns' && e.errno === 22) return netnsError.notNamespace(netns, err);
  return new NatwatchError('ERUNTIME', String(e?.message ?? err), { cause: err });
}

/** Reads facts inside the namespace (null: this one). */
export async function readKernelFacts(netns: string | null, what: { nft?: boolean; legacy?: boolean; rtnl?: boolean; diag?: boolean; sysctls?: string[] }): Promise<KernelFacts> {
  let buf: Buffer;
  try {
    buf = await loadNative().kernelFacts({ netns, ...what });
  } catch (err) {
    throw mapFactsError(err, netns);
  }
  return decodeFacts(buf);
}

/** The namespace's ruleset and interface addresses, in one trip into it. */
export async function readRuleset(netns: string | null): Promise<{ ruleset: Ruleset; interfaces: Map<string, string[]> }> {
  const f = await readKernelFacts(netns, { nft: true, legacy: true, rtnl: true });
  return { ruleset: buildRuleset(f), interfaces: interfacesOf(f) };
}

/**
 * Does the rule logging to NFLOG (group, prefix) drop or reject what it logs? null when no rule
 * read names that group and prefix (prefixes compared trimmed: the kernel hands them over as
 * the rule spells them). What ECS `event.type: denied` rests on.
 */
export function logDenies(r: Ruleset, group: number, prefix: string): boolean | null {
  let found: boolean | null = null;
  const want = prefix.trim();
  for (const l of r.logs) {
    if (l.group !== group || l.prefix.trim() !== want) continue;
    if (l.denies) return true;
    found = false;
  }
  return found;
}

/** NFLOG groups the namespace's ruleset logs to (nft `log group N`, iptables `-j NFLOG`). */
export async function nflogGroupsFromRuleset(netnsPath: string | null): Promise<number[]> {
  return (await readRuleset(netnsPath)).ruleset.groups;
}

/** Interface name → addresses, from an rtnetlink dump in the namespace. */
export async function readInterfaces(netns: string | null): Promise<Map<string, string[]>> {
  return interfacesOf(await readKernelFacts(netns, { rtnl: true }));
}

/** Reads the namespace's ruleset; says whether it changed since the last read. */
export class RulesetWatcher {
  private last = '';
  private info: Ruleset = EMPTY_RULESET;
  private ifs = new Map<string, string[]>();

  constructor(readonly netns: string | null) {}

  get current(): Ruleset {
    return this.info;
  }

  get interfaces(): Map<string, string[]> {
    return this.ifs;
  }

  async refresh(): Promise<{ changed: boolean; info: Ruleset; interfaces: Map<string, string[]> }> {
    const { ruleset, interfaces } = await readRuleset(this.netns);
    this.ifs = interfaces;
    const raw = JSON.stringify(ruleset);
    if (raw === this.last) return { changed: false, info: this.info, interfaces };
    this.last = raw;
    this.info = ruleset;
    return { changed: true, info: ruleset, interfaces };
  }
}
