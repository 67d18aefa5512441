// Packets logged per NFLOG (group, prefix), for natwatch_nflog_packets_total. Bounded: a
// ruleset has a handful of log rules, but prefixes are free text, so past MAX pairs the rest
// are counted under one overflow pair rather than growing the series without end.
import type { NflogView } from '../source/types.js';

export const NFLOG_COUNT_MAX = 100;
/** Prefix of the overflow pair (group -1): packets of pairs beyond the bound. */
export const NFLOG_OVERFLOW_PREFIX = '(other)';

export interface NflogCount {
  group: number;
  prefix: string;
  packets: number;
}

export class NflogCounts {
  private readonly by = new Map<string, NflogCount>();
  private readonly overflow: NflogCount = { group: -1, prefix: NFLOG_OVERFLOW_PREFIX, packets: 0 };

  constructor(private readonly max = NFLOG_COUNT_MAX) {}

  onBatch(v: NflogView): void {
    for (let i = 0; i < v.count; i++) {
      v.seek(i);
      // Trimmed: `log prefix "blocked-9999 "` reads as the rule's name.
      const prefix = v.prefix().trim();
      const id = `${v.group}|${prefix}`;
      let c = this.by.get(id);
      if (!c) {
        if (this.by.size >= this.max) {
          this.overflow.packets++;
          continue;
        }
        this.by.set(id, (c = { group: v.group, prefix, packets: 0 }));
      }
      c.packets++;
    }
  }

  list(): NflogCount[] {
    const out = [...this.by.values()].map((c) => ({ ...c }));
    if (this.overflow.packets > 0) out.push({ ...this.overflow });
    return out;
  }
}
