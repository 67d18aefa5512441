// The `nflog-groups` check: the NFLOG groups the ruleset logs to, and who reads each one.
// The kernel lists bound groups per namespace in /proc/net/netfilter/nfnetlink_log (group and
// the holder's netlink port id); /proc/net/netlink maps the port id to a socket inode, and the
// process with that inode among its fds is the holder. natwatch takes ruleset groups best
// effort: one another program holds is retried every 30 s (serve --nflog-retry).
import type { CheckResult } from './types.js';

export interface NflogHolder {
  pid: number;
  /** Process name; 'natwatch' when its command line runs natwatch. */
  name: string;
}

export interface NflogFacts {
  /** Groups the ruleset's log statements name. */
  groups: number[];
  /** Bound groups → holder (null: bound, holder not found). */
  holders: Map<number, NflogHolder | null>;
}

/** /proc/net/netfilter/nfnetlink_log → group → holder port id. */
export function parseNfnetlinkLog(text: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const line of text.split('\n')) {
    const c = line.trim().split(/\s+/);
    if (c.length >= 2 && /^\d+$/.test(c[0]!) && /^\d+$/.test(c[1]!)) out.set(Number(c[0]), Number(c[1]));
  }
  return out;
}

/** /proc/net/netlink → NETLINK_NETFILTER (12) port id → socket inode. */
export function parseNetlinkInodes(text: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const line of text.split('\n').slice(1)) {
    // sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
    const c = line.trim().split(/\s+/);
    if (c.length >= 10 && c[1] === '12') out.set(Number(c[2]), Number(c[9]));
  }
  return out;
}

export function nflogGroups(nflog: NflogFacts | undefined): CheckResult {
  const id = 'nflog-groups';
  if (!nflog) return { id, verdict: 'info', finding: 'NFLOG bindings unreadable', fix: null };
  if (nflog.groups.length === 0) return { id, verdict: 'ok', finding: 'the ruleset logs to no NFLOG group', fix: null };
  const parts: string[] = [];
  let natwatch = 0;
  let other = 0;
  let nobody = 0;
  for (const g of nflog.groups) {
    if (!nflog.holders.has(g)) {
      nobody++;
      parts.push(`group ${g}: not bound (logged packets go nowhere)`);
      continue;
    }
    const h = nflog.holders.get(g) ?? null;
    if (h?.name === 'natwatch') natwatch++;
    else other++;
    parts.push(`group ${g}: held by ${h ? `${h.name} (pid ${h.pid})` : 'an unknown process'}`);
  }
  const finding = parts.join('; ');
  if (other > 0) {
    return {
      id,
      verdict: 'warn',
      finding: `${finding}. natwatch cannot see packets of a group another program holds: it runs without them and retries the bind every 30 s`,
      fix: `# log the drops natwatch should see to a group of their own, or stop the other reader`,
    };
  }
  if (nobody > 0 && natwatch === 0) return { id, verdict: 'info', finding: `${finding}; 'natwatch serve' binds them when it runs`, fix: null };
  return { id, verdict: 'ok', finding, fix: null };
}
