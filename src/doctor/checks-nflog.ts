// The `nflog-groups` check: the NFLOG groups the ruleset logs to, and who reads each one
// (facts.ts: the namespace's nfnetlink_log and netlink tables, then the process owning the
// socket). natwatch takes ruleset groups best effort: one another program holds is retried
// every 30 s (serve --nflog-retry).
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
