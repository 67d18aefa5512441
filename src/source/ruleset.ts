// Reads a namespace's NAT configuration: source NAT statements (capacity detection), the NFLOG
// groups its log statements name, and its interface addresses (masquerade takes the outgoing
// interface's address; the host's own flows come from them).
//
// nft -j shows native nftables rules fully, but a rule made by iptables-nft appears only as
// {"xt":{"type":"target","name":"MASQUERADE"}} without its options (nft 1.0.6), so when xt
// targets are present the rules are read again through iptables-nft-save. iptables-legacy rules
// are invisible to nft: they are read through iptables-legacy-save when the legacy tables exist.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { NatwatchError } from '../errors.js';
import { checkNetns } from '../netns.js';
import { prefixRange, type AddrRange } from './ip.js';
import { protoName } from './names.js';

/** A source NAT statement found in the ruleset. */
export interface DetectedNat {
  kind: 'masquerade' | 'snat';
  /** nft family: ip, ip6 or inet (iptables: ip / ip6). */
  family: string;
  /** Protocols the rule is limited to (null: any). */
  protos: string[] | null;
  /** `oifname` the rule matches (masquerade takes that interface's address). */
  oifname: string | null;
  /** snat target addresses; null for masquerade or a target we cannot read. */
  addrs: AddrRange[] | null;
  ports: [number, number] | null;
  origin: 'nft' | 'iptables' | 'iptables-legacy';
}

export type Exec = (cmd: string, args: string[]) => Promise<string>;

const EXEC_TIMEOUT_MS = 5000;

/** Runs cmd inside the namespace (nsenter --net=PATH) or here when netns is null. */
export function nsExec(netns: string | null): Exec {
  return (cmd, args) =>
    new Promise((resolve, reject) => {
      const [file, argv] = netns === null ? [cmd, args] : ['nsenter', [`--net=${netns}`, cmd, ...args]];
      execFile(file, argv, { timeout: EXEC_TIMEOUT_MS, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
        if (err) {
          const why = String(stderr || err.message).trim().split('\n')[0];
          const e = new NatwatchError('ERUNTIME', `${cmd} ${args.join(' ')}: ${why}`, { cause: err });
          (e as NatwatchError & { enoent?: boolean }).enoent = (err as NodeJS.ErrnoException).code === 'ENOENT';
          reject(e);
        } else resolve(stdout);
      });
    });
}

function checkNetnsOrOwn(netns: string | null): void {
  if (netns !== null) checkNetns(netns);
}

export interface RulesetInfo {
  nat: DetectedNat[];
  /** NFLOG groups named by log statements / NFLOG targets, sorted, unique. */
  groups: number[];
}

// ---- nft -j ----------------------------------------------------------------------------------

type J = any; // nft's JSON schema is wide; the walkers below check every field they read

const PORT_PROTOS = new Set(['tcp', 'udp', 'sctp', 'dccp', 'udplite']);

function protoValues(v: J): string[] | null {
  const one = (x: J) => (typeof x === 'number' ? protoName(x) : typeof x === 'string' ? x : null);
  if (v && typeof v === 'object' && Array.isArray(v.set)) {
    const out = v.set.map(one).filter((x: string | null): x is string => x !== null);
    return out.length ? out : null;
  }
  const x = one(v);
  return x ? [x] : null;
}

function portsOf(p: J): [number, number] | null {
  if (typeof p === 'number') return [p, p];
  if (p && Array.isArray(p.range) && typeof p.range[0] === 'number' && typeof p.range[1] === 'number') return [p.range[0], p.range[1]];
  return null;
}

function addrOf(a: J): AddrRange[] | null {
  if (typeof a === 'string') return [{ lo: a, hi: a }];
  if (a && Array.isArray(a.range) && typeof a.range[0] === 'string') return [{ lo: a.range[0], hi: a.range[1] }];
  if (a && a.prefix && typeof a.prefix.addr === 'string') {
    const r = prefixRange(a.prefix.addr, Number(a.prefix.len));
    return r ? [r] : null;
  }
  return null;
}

/** (addresses, ports) pairs an snat map's data side can produce. */
function mapTargets(data: J, ports: [number, number] | null): Array<{ addrs: AddrRange[] | null; ports: [number, number] | null }> {
  if (data && Array.isArray(data.concat)) return [{ addrs: addrOf(data.concat[0]), ports: portsOf(data.concat[1]) ?? ports }];
  return [{ addrs: addrOf(data), ports }];
}

export function parseNftRuleset(doc: J): RulesetInfo & { xtFamilies: Set<string> } {
  const items: J[] = Array.isArray(doc?.nftables) ? doc.nftables : [];
  const maps = new Map<string, J[]>();
  for (const it of items) {
    const m = it?.map;
    if (m && Array.isArray(m.elem)) maps.set(`${m.family}|${m.table}|${m.name}`, m.elem);
  }
  const nat: DetectedNat[] = [];
  const groups = new Set<number>();
  const xtFamilies = new Set<string>();
  for (const it of items) {
    const r = it?.rule;
    if (!r || !Array.isArray(r.expr)) continue;
    const family = String(r.family);
    let protos: string[] | null = null;
    let oifname: string | null = null;
    for (const e of r.expr) {
      if (e?.match) {
        const { left, right, op } = e.match;
        if (left?.meta?.key === 'l4proto' || (left?.payload?.protocol === 'ip' && left.payload.field === 'protocol') || (left?.payload?.protocol === 'ip6' && left.payload.field === 'nexthdr')) {
          if (op === '==' || op === 'in') protos = protoValues(right);
        } else if (PORT_PROTOS.has(left?.payload?.protocol)) {
          protos = [left.payload.protocol];
        } else if (left?.meta?.key === 'oifname' && op === '==' && typeof right === 'string') {
          oifname = right;
        }
      } else if (e && typeof e === 'object' && 'masquerade' in e) {
        nat.push({ kind: 'masquerade', family, protos, oifname, addrs: null, ports: portsOf(e.masquerade?.port), origin: 'nft' });
      } else if (e?.snat) {
        const ports = portsOf(e.snat.port);
        const a = e.snat.addr;
        if (a?.map) {
          const d = a.map.data;
          const elems: J[] = Array.isArray(d?.set) ? d.set : typeof d === 'string' && d.startsWith('@') ? (maps.get(`${family}|${r.table}|${d.slice(1)}`) ?? []) : [];
          for (const el of elems) {
            for (const t of mapTargets(Array.isArray(el) ? el[1] : undefined, ports)) {
              nat.push({ kind: 'snat', family, protos, oifname, addrs: t.addrs, ports: t.ports, origin: 'nft' });
            }
          }
        } else {
          nat.push({ kind: 'snat', family, protos, oifname, addrs: addrOf(a), ports, origin: 'nft' });
        }
      } else if (e?.log && typeof e.log.group === 'number') {
        groups.add(e.log.group);
      } else if (e?.xt?.type === 'target' && ['MASQUERADE', 'SNAT', 'NFLOG'].includes(e.xt.name)) {
        xtFamilies.add(family);
      }
    }
  }
  return { nat, groups: [...groups].sort((a, b) => a - b), xtFamilies };
}

// ---- iptables-save ---------------------------------------------------------------------------

function splitHostPort(s: string): { host: string; ports: [number, number] | null } {
  let host = s;
  let port: string | null = null;
  const v6 = /^\[([^\]]+)\](?::(.+))?$/.exec(s);
  if (v6) {
    host = v6[1]!;
    port = v6[2] ?? null;
  } else if ((s.match(/:/g) ?? []).length === 1) {
    [host, port] = s.split(':') as [string, string];
  }
  let ports: [number, number] | null = null;
  if (port) {
    const [a, b] = port.split('-').map(Number);
    if (Number.isInteger(a)) ports = [a!, Number.isInteger(b) ? b! : a!];
  }
  return { host, ports };
}

/** NAT targets and NFLOG groups from iptables-save / ip6tables-save text. */
export function parseIptablesSave(text: string, family: 'ip' | 'ip6', origin: DetectedNat['origin']): RulesetInfo {
  const nat: DetectedNat[] = [];
  const groups = new Set<number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('-A ')) continue;
    const tok = line.split(/\s+/);
    const opt = (name: string): string | null => {
      const i = tok.indexOf(name);
      return i > 0 && tok[i - 1] !== '!' && i + 1 < tok.length ? tok[i + 1]! : null;
    };
    const target = opt('-j');
    const p = opt('-p');
    const protos = p ? [p] : null;
    const oifname = opt('-o')?.replace(/\+$/, '*') ?? null;
    if (target === 'MASQUERADE') {
      const tp = opt('--to-ports');
      const [a, b] = tp ? tp.split('-').map(Number) : [];
      nat.push({ kind: 'masquerade', family, protos, oifname, addrs: null, ports: a !== undefined && Number.isInteger(a) ? [a, Number.isInteger(b) ? b! : a] : null, origin });
    } else if (target === 'SNAT') {
      const to = opt('--to-source');
      if (!to) continue;
      const { host, ports } = splitHostPort(to);
      const v6 = host.startsWith('[') || host.includes(':');
      const [lo, hi] = v6 && !host.includes('-') ? [host, host] : host.split('-');
      nat.push({ kind: 'snat', family, protos, oifname, addrs: lo ? [{ lo, hi: hi ?? lo }] : null, ports, origin });
    } else if (target === 'NFLOG') {
      groups.add(Number(opt('--nflog-group') ?? 0));
    }
  }
  return { nat, groups: [...groups].sort((a, b) => a - b) };
}

// ---- readers ---------------------------------------------------------------------------------

/** Reads the namespace's ruleset; skips parsing when the raw text did not change. */
export class RulesetWatcher {
  private last = '';
  private info: RulesetInfo = { nat: [], groups: [] };
  private readonly exec: Exec;

  constructor(
    readonly netns: string | null,
    exec?: Exec,
  ) {
    this.exec = exec ?? nsExec(netns);
  }

  get current(): RulesetInfo {
    return this.info;
  }

  async refresh(): Promise<{ changed: boolean; info: RulesetInfo }> {
    checkNetnsOrOwn(this.netns);
    let nftText = '';
    try {
      nftText = await this.exec('nft', ['-j', 'list', 'ruleset']);
    } catch (err) {
      if (!(err as { enoent?: boolean }).enoent) throw err;
    }
    let raw = nftText;
    const nft = nftText ? parseNftRuleset(JSON.parse(nftText)) : { nat: [], groups: [], xtFamilies: new Set<string>() };
    const extra: RulesetInfo[] = [];
    const tools: Array<[string, 'ip' | 'ip6', DetectedNat['origin']]> = [];
    if (nft.xtFamilies.has('ip')) tools.push(['iptables-nft-save', 'ip', 'iptables']);
    if (nft.xtFamilies.has('ip6')) tools.push(['ip6tables-nft-save', 'ip6', 'iptables']);
    if (existsSync('/proc/net/ip_tables_names')) tools.push(['iptables-legacy-save', 'ip', 'iptables-legacy']);
    if (existsSync('/proc/net/ip6_tables_names')) tools.push(['ip6tables-legacy-save', 'ip6', 'iptables-legacy']);
    for (const [cmd, fam, origin] of tools) {
      try {
        const text = await this.exec(cmd, []);
        raw += `\n#${cmd}\n${text}`;
        extra.push(parseIptablesSave(text, fam, origin));
      } catch (err) {
        if (!(err as { enoent?: boolean }).enoent) throw err;
      }
    }
    if (raw === this.last) return { changed: false, info: this.info };
    this.last = raw;
    const groups = new Set(nft.groups);
    const nat = [...nft.nat];
    for (const x of extra) {
      // iptables-nft rules are also in nft's output (as bare xt targets): the save text has their options.
      nat.push(...x.nat);
      for (const g of x.groups) groups.add(g);
    }
    this.info = { nat, groups: [...groups].sort((a, b) => a - b) };
    return { changed: true, info: this.info };
  }
}

/** NFLOG groups the namespace's ruleset logs to (nft `log group N`, iptables `-j NFLOG`). */
export async function nflogGroupsFromRuleset(netnsPath: string | null): Promise<number[]> {
  const w = new RulesetWatcher(netnsPath);
  return (await w.refresh()).info.groups;
}

/** Interface name → addresses, from `ip -j addr` in the namespace. */
export async function readInterfaces(netns: string | null, exec: Exec = nsExec(netns)): Promise<Map<string, string[]>> {
  checkNetnsOrOwn(netns);
  const out = new Map<string, string[]>();
  const doc = JSON.parse(await exec('ip', ['-j', 'addr', 'show'])) as J[];
  for (const link of Array.isArray(doc) ? doc : []) {
    if (typeof link?.ifname !== 'string') continue;
    const addrs: string[] = [];
    for (const a of Array.isArray(link.addr_info) ? link.addr_info : []) if (typeof a?.local === 'string') addrs.push(a.local);
    out.set(link.ifname, addrs);
  }
  return out;
}
