// conntrack_table_full: count/max >= tableWarning warns; >= tableCritical, or any early_drop
// (the kernel evicting entries to make room), or drops while above the warning line is critical;
// resolved below tableResolve.
import type { Severity } from '../types.js';
import type { AlertSink } from './engine.js';
import type { Thresholds } from './thresholds.js';

export interface TableTick {
  count: number;
  max: number;
  dDrop: number;
  dEarlyDrop: number;
}

const KEY = '';

export class TableFullRule {
  constructor(
    private readonly engine: AlertSink,
    private readonly t: Thresholds,
  ) {}

  /** Returns true when the table counts as full (drops there are the table's, not a key's). */
  evaluate(s: TableTick): boolean {
    if (s.max <= 0) return false;
    const util = s.count / s.max;
    const drops = s.dDrop + s.dEarlyDrop;
    let sev: Severity | null = null;
    if (util >= this.t.tableCritical || s.dEarlyDrop > 0 || (util >= this.t.tableWarning && s.dDrop > 0)) sev = 'critical';
    else if (util >= this.t.tableWarning) sev = 'warning';
    const firing = this.engine.isFiring('conntrack_table_full', KEY);
    if (sev === null && util < this.t.tableResolve) {
      if (firing) this.engine.resolve('conntrack_table_full', KEY, { used: s.count, capacity: s.max, dropsDelta: drops });
      return false;
    }
    this.engine.observe('conntrack_table_full', KEY, {}, sev, {
      used: s.count,
      capacity: s.max,
      dropsDelta: drops,
      message: (total) => tableMessage(s.count, s.max, total),
    });
    return sev !== null || firing;
  }
}

function tableMessage(count: number, max: number, drops: number): string {
  const state = count >= max ? 'is full' : `is ${Math.floor((count / max) * 100)}% full`;
  const dropped = drops > 0 ? `, ${drops} packet${drops === 1 ? '' : 's'} dropped` : '';
  return `The conntrack table ${state}: ${count}/${max} entries${dropped}; raise net.netfilter.nf_conntrack_max (with nf_conntrack_buckets at max/4), shorten conntrack timeouts or exempt traffic that needs no tracking (notrack)`;
}
