// Everything the checks look at, gathered once and read straight from the kernel: sysctls
// (per network namespace, so read inside it by the addon's helper thread), the ruleset and
// interface addresses (netlink, the same model serve uses), and the conntrack table (natwatch's
// own dump). No external program runs. Facts that cannot be read become nulls or notes that the
// checks report, never crashes.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { checkNetns, netnsName } from '../netns.js';
import type { KernelFacts } from '../source/facts-codec.js';
import { buildRuleset, interfacesOf, readKernelFacts, type Ruleset } from '../source/ruleset.js';
import { dumpTable, type CtSummary } from './conntrack-dump.js';
import { readNflogBindings, type NflogBindings } from '../source/nflog-bindings.js';
import type { NflogFacts, NflogHolder } from './checks-nflog.js';

const SYSCTLS = [
  'net/netfilter/nf_conntrack_count',
  'net/netfilter/nf_conntrack_max',
  'net/netfilter/nf_conntrack_buckets',
  'net/netfilter/nf_conntrack_events',
  'net/netfilter/nf_conntrack_tcp_timeout_time_wait',
  'net/netfilter/nf_conntrack_tcp_timeout_established',
  'net/ipv4/ip_local_port_range',
  'net/ipv4/ip_local_reserved_ports',
  'net/ipv4/ip_forward',
  'net/core/rmem_max',
] as const;
export type SysctlName = (typeof SYSCTLS)[number];

export interface Facts {
  /** Namespace path, null = the current one. */
  netns: string | null;
  /** Prefix that runs a fix command inside the namespace ('' for the current one). */
  inNs: string;
  sysctl: Partial<Record<SysctlName, string>>;
  /** /sys/module/nf_conntrack/parameters/hashsize (host-wide), null if unreadable. */
  hashsize: number | null;
  /** null when the ruleset could not be read at all (reason in rulesetError). */
  ruleset: Ruleset | null;
  /** Why the ruleset (or part of it: Ruleset.unreadable) could not be read. */
  rulesetError: string | null;
  /** Interface name → addresses (masquerade takes the outgoing interface's). */
  interfaces: Map<string, string[]>;
  table: CtSummary | null;
  tableNote: string | null;
  /** NFLOG groups the ruleset logs to and who holds them; absent when unreadable. */
  nflog?: NflogFacts;
}

/** Where the facts come from; tests inject their own. */
export interface FactReaders {
  kernel(netns: string | null, what: { nft: boolean; legacy: boolean; rtnl: boolean; sysctls: string[] }): Promise<KernelFacts>;
  dumpTable(netns: string | null): Promise<CtSummary>;
  /** Bound NFLOG groups and netlink sockets in the namespace; without it, nflog is absent. */
  nflogBindings?(netns: string | null): Promise<NflogBindings>;
}

const kernelReaders: FactReaders = { kernel: readKernelFacts, dumpTable, nflogBindings: async (netns) => readNflogBindings(netns) };

/** Name for `ip netns exec NAME` when the path is one `ip netns add` made. */
function fixPrefix(netns: string | null): string {
  if (netns === null) return '';
  const name = netnsName(netns);
  return name !== netns ? `ip netns exec ${name} ` : `nsenter --net=${netns} `;
}

export async function gatherFacts(netns: string | null, readers: FactReaders = kernelReaders): Promise<Facts> {
  if (netns !== null) checkNetns(netns);
  const k = await readers.kernel(netns, { nft: true, legacy: true, rtnl: true, sysctls: [...SYSCTLS] });
  const sysctl: Partial<Record<SysctlName, string>> = {};
  for (const name of SYSCTLS) {
    const v = k.sysctls.get(name);
    if (v !== undefined && v !== '') sysctl[name] = v;
  }
  // net.core.rmem_max is global (registered in the initial namespace only): read the host's.
  if (sysctl['net/core/rmem_max'] === undefined) sysctl['net/core/rmem_max'] = readOr('/proc/sys/net/core/rmem_max');

  const built = buildRuleset(k);
  const nftFailed = k.errors.some((e) => e.section === 'nft');
  const ruleset = nftFailed && built.ruleCount === 0 ? null : built;
  const rulesetError = built.unreadable.length ? built.unreadable.join('; ') : null;

  let table: CtSummary | null = null;
  let tableNote: string | null = null;
  const count = Number(sysctl['net/netfilter/nf_conntrack_count'] ?? NaN);
  if (!Number.isFinite(count)) tableNote = 'conntrack is not available in this namespace';
  else {
    try {
      table = await readers.dumpTable(netns);
    } catch (err) {
      tableNote = `table not dumped: ${(err as Error).message}`;
    }
  }

  const hs = Number(readOr('/sys/module/nf_conntrack/parameters/hashsize') ?? NaN);
  const nflog = ruleset ? await nflogFacts(netns, ruleset.groups, readers) : undefined;
  return { netns, inNs: fixPrefix(netns), sysctl, hashsize: Number.isFinite(hs) ? hs : null, ruleset, rulesetError, interfaces: interfacesOf(k), table, tableNote, ...(nflog ? { nflog } : {}) };
}

/** The ruleset's NFLOG groups and the process holding each (bound group → port id → inode → fd). */
async function nflogFacts(netns: string | null, groups: number[], readers: FactReaders): Promise<NflogFacts | undefined> {
  const holders = new Map<number, NflogHolder | null>();
  if (groups.length === 0) return { groups, holders };
  if (!readers.nflogBindings) return undefined;
  let b: NflogBindings;
  try {
    b = await readers.nflogBindings(netns);
  } catch {
    return undefined;
  }
  const wanted = new Map<number, number>(); // inode → group
  for (const g of groups) {
    const port = b.groups.get(g);
    if (port === undefined) continue;
    holders.set(g, null);
    const inode = b.inodes.get(port);
    if (inode !== undefined) wanted.set(inode, g);
  }
  if (wanted.size > 0) {
    for (const [inode, holder] of socketOwners(new Set(wanted.keys()))) holders.set(wanted.get(inode)!, holder);
  }
  return { groups, holders };
}

/** Processes holding these socket inodes (a scan of /proc/PID/fd: doctor runs once). */
function socketOwners(inodes: Set<number>): Map<number, NflogHolder> {
  const out = new Map<number, NflogHolder>();
  let pids: string[] = [];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return out;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let m: RegExpExecArray | null = null;
      try {
        m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      } catch {
        continue;
      }
      if (!m || !inodes.has(Number(m[1]))) continue;
      const cmdline = readOr(`/proc/${pid}/cmdline`)?.replace(/\0/g, ' ') ?? '';
      const name = /natwatch/.test(cmdline) ? 'natwatch' : (readOr(`/proc/${pid}/comm`) ?? 'unknown');
      out.set(Number(m[1]), { pid: Number(pid), name });
    }
  }
  return out;
}

function readOr(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}
