// Everything the checks look at, gathered once. Sysctls under /proc/sys/net are per network
// namespace: read from the host they show the host's, so for --netns they are read through
// `nsenter --net=PATH` (one shell, every file). The ruleset and the table dump come from the
// same namespace. Missing tools or files become nulls that checks report, never crashes.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { NatwatchError } from '../errors.js';
import { checkNetns, netnsName } from '../netns.js';
import { parseConntrackList, type CtSummary } from './conntrack-list.js';
import { scanIptablesSave, scanRuleset, type RulesetScan } from './ruleset-scan.js';

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

/** Name for `ip netns exec NAME` when the path is one `ip netns add` made. */
function fixPrefix(netns: string | null): string {
  if (netns === null) return '';
  const name = netnsName(netns);
  return name !== netns ? `ip netns exec ${name} ` : `nsenter --net=${netns} `;
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
  return { netns, inNs: fixPrefix(netns), sysctl, hashsize: Number.isFinite(hs) ? hs : null, ruleset, rulesetError, table, tableNote };
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
