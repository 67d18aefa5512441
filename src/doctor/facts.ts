// Everything the checks look at, gathered once. Sysctls under /proc/sys/net are per network
// namespace: read from the host they show the host's, so for --netns they are read through
// `nsenter --net=PATH` (one shell, every file). The ruleset and the table dump come from the
// same namespace. Missing tools or files become nulls that checks report, never crashes.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { NatwatchError } from '../errors.js';
import { parseConntrackList, type CtSummary } from './conntrack-list.js';
import { scanIptablesSave, scanRuleset, type RulesetScan } from './ruleset-scan.js';
import { parseNetlinkInodes, parseNfnetlinkLog, type NflogFacts, type NflogHolder } from './checks-nflog.js';
import { RulesetWatcher } from '../source/ruleset.js';

const SYSCTLS = [
  'net/netfilter/nf_conntrack_count',
  'net/netfilter/nf_conntrack_max',
  'net/netfilter/nf_conntrack_buckets',
  'net/netfilter/nf_conntrack_events',
  'net/netfilter/nf_conntrack_tcp_timeout_time_wait',
  'net/netfilter/nf_conntrack_tcp_timeout_established',
  'net/ipv4/ip_local_port_range',
  'net/ipv4/ip_forward',
  'net/core/rmem_max',
] as const;
export type SysctlName = (typeof SYSCTLS)[number];

/** Dumping a table larger than this just for advice costs more than it tells. */
const DUMP_LIMIT = 200_000;

export interface Facts {
  /** Namespace path, null = the current one. */
  netns: string | null;
  /** Prefix that runs a fix command inside the namespace ('' for the current one). */
  inNs: string;
  sysctl: Partial<Record<SysctlName, string>>;
  /** /sys/module/nf_conntrack/parameters/hashsize (host-wide), null if unreadable. */
  hashsize: number | null;
  /** null when `nft` is missing or failed (reason in rulesetError). */
  ruleset: RulesetScan | null;
  rulesetError: string | null;
  /** null when not dumped (tool missing, table too large, conntrack off). */
  table: CtSummary | null;
  tableNote: string | null;
  /** NFLOG groups the ruleset logs to and who holds them; absent when unreadable. */
  nflog?: NflogFacts;
}

export interface Exec {
  (cmd: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
}

const execTool: Exec = (cmd, args) =>
  new Promise((resolve) => {
    execFile(cmd, args, { timeout: 15_000, maxBuffer: 256 << 20 }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: unknown }) | null;
      const code = !e ? 0 : typeof e.code === 'number' ? e.code : e.code === 'ENOENT' ? 127 : 1;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) || (e && !stderr ? String(e.message) : '') });
    });
  });

/** A one-line error for a namespace path that is missing or that we may not look at. */
export function checkNetns(path: string): void {
  try {
    statSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') throw new NatwatchError('EPERM', `need root to open network namespace ${path}`);
    throw new NatwatchError('ENETNS', `network namespace ${path} does not exist`);
  }
}

/** Name for `ip netns exec NAME` when the path is one `ip netns add` made. */
function fixPrefix(netns: string | null): string {
  if (netns === null) return '';
  const m = /^\/(?:var\/)?run\/netns\/([^/]+)$/.exec(netns);
  return m ? `ip netns exec ${m[1]} ` : `nsenter --net=${netns} `;
}

function inNamespace(netns: string | null, cmd: string, args: string[]): [string, string[]] {
  return netns === null ? [cmd, args] : ['nsenter', [`--net=${netns}`, '--', cmd, ...args]];
}

export async function gatherFacts(netns: string | null, exec: Exec = execTool): Promise<Facts> {
  if (netns !== null) checkNetns(netns);
  const sysctl = await readSysctls(netns, exec);
  // net.core.rmem_max is global (registered in the initial namespace only): read the host's.
  if (sysctl['net/core/rmem_max'] === undefined) sysctl['net/core/rmem_max'] = readOr('/proc/sys/net/core/rmem_max');

  let ruleset: RulesetScan | null = null;
  let rulesetError: string | null = null;
  const [nftCmd, nftArgs] = inNamespace(netns, 'nft', ['list', 'ruleset']);
  const nft = await exec(nftCmd, nftArgs);
  if (nft.code === 0) ruleset = scanRuleset(nft.stdout);
  else rulesetError = nft.code === 127 ? 'nft is not installed' : nft.stderr.trim().split('\n')[0] ?? `nft exit ${nft.code}`;
  // Legacy iptables rules are invisible to nft; look only if their tables exist here, so that
  // reading them does not load the x_tables modules as a side effect.
  const [catCmd, catArgs] = inNamespace(netns, 'cat', ['/proc/net/ip_tables_names', '/proc/net/ip6_tables_names']);
  const names = await exec(catCmd, catArgs);
  if (names.stdout.trim() !== '') {
    for (const tool of ['iptables-legacy-save', 'ip6tables-legacy-save']) {
      const [cmd, args] = inNamespace(netns, tool, []);
      const r = await exec(cmd, args);
      if (r.code === 0) ruleset = scanIptablesSave(r.stdout, ruleset ?? { natRules: [], ctRules: [], natChains: 0, ruleCount: 0 });
    }
    if (ruleset && rulesetError) rulesetError = null;
  }

  let table: CtSummary | null = null;
  let tableNote: string | null = null;
  const count = Number(sysctl['net/netfilter/nf_conntrack_count'] ?? NaN);
  if (!Number.isFinite(count)) tableNote = 'conntrack is not available in this namespace';
  else if (count > DUMP_LIMIT) tableNote = `table holds ${count} entries: not dumped (over ${DUMP_LIMIT}); 'natwatch serve' and /v1/top track it live`;
  else if (count > 0) {
    // conntrack -L lists one family at a time (IPv4 by default).
    let text = '';
    for (const family of ['ipv4', 'ipv6']) {
      const [cmd, args] = inNamespace(netns, 'conntrack', ['-L', '-f', family]);
      const r = await exec(cmd, args);
      if (r.code === 0) text += r.stdout;
      else if (tableNote === null) tableNote = r.code === 127 ? 'conntrack (conntrack-tools) is not installed' : `conntrack -L failed: ${r.stderr.trim().split('\n')[0]}`;
    }
    if (tableNote === null) table = parseConntrackList(text);
  } else table = parseConntrackList('');

  const hs = Number(readOr('/sys/module/nf_conntrack/parameters/hashsize') ?? NaN);
  const nflog = await readNflog(netns, exec);
  return { netns, inNs: fixPrefix(netns), sysctl, hashsize: Number.isFinite(hs) ? hs : null, ruleset, rulesetError, table, tableNote, ...(nflog ? { nflog } : {}) };
}

/** The ruleset's NFLOG groups (serve's own ruleset reader) and the process holding each. */
async function readNflog(netns: string | null, exec: Exec): Promise<NflogFacts | undefined> {
  const run = async (cmd: string, args: string[]): Promise<string> => {
    const [c, a] = inNamespace(netns, cmd, args);
    const r = await exec(c, a);
    if (r.code !== 0) throw Object.assign(new Error(r.stderr.trim() || `${cmd} exit ${r.code}`), { enoent: r.code === 127 });
    return r.stdout;
  };
  let groups: number[];
  try {
    groups = (await new RulesetWatcher(netns, run).refresh()).info.groups;
  } catch {
    return undefined;
  }
  const holders = new Map<number, NflogHolder | null>();
  if (groups.length === 0) return { groups, holders };
  // No file: nfnetlink_log is not loaded, so nothing is bound.
  const bound = parseNfnetlinkLog(await run('cat', ['/proc/net/netfilter/nfnetlink_log']).catch(() => ''));
  const inodes = parseNetlinkInodes(await run('cat', ['/proc/net/netlink']).catch(() => ''));
  const wanted = new Map<number, number>(); // inode → group
  for (const g of groups) {
    const port = bound.get(g);
    if (port === undefined) continue;
    holders.set(g, null);
    const inode = inodes.get(port);
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

async function readSysctls(netns: string | null, exec: Exec): Promise<Partial<Record<SysctlName, string>>> {
  const out: Partial<Record<SysctlName, string>> = {};
  if (netns === null) {
    for (const name of SYSCTLS) {
      const v = readOr(`/proc/sys/${name}`);
      if (v !== undefined) out[name] = v;
    }
    return out;
  }
  // One nsenter for all files; a missing file prints nothing after the '='.
  const script = `for f in ${SYSCTLS.join(' ')}; do printf '%s=' "$f"; tr '\\t\\n' '  ' < "/proc/sys/$f" 2>/dev/null; echo; done`;
  const r = await exec('nsenter', [`--net=${netns}`, '--', 'sh', '-c', script]);
  if (r.code !== 0) {
    const why = r.stderr.trim().split('\n')[0] ?? '';
    if (r.code === 127) throw new NatwatchError('ERUNTIME', 'nsenter (util-linux) is needed to read a namespace\'s sysctls');
    if (/permission|not permitted/i.test(why)) throw new NatwatchError('EPERM', `need root to enter ${netns} (${why})`);
    throw new NatwatchError('ENETNS', `cannot enter ${netns}: ${why}`);
  }
  for (const line of r.stdout.split('\n')) {
    const i = line.indexOf('=');
    if (i < 0) continue;
    const v = line.slice(i + 1).trim();
    if (v !== '') out[line.slice(0, i) as SysctlName] = v.replace(/\s+/g, ' ');
  }
  return out;
}
