// The top keys by utilization for stats/`/v1/top`: one pass over the busy keys keeping the best
// n in a small sorted array (no sort of all keys).
import type { TopEntry } from '../types.js';
import type { KeyTable } from './key-table.js';

export function topKeys(keys: KeyTable, n: number, nowSec: number, netns: string | null): TopEntry[] {
  const best: Array<{ k: number; u: number; used: number; cap: number }> = [];
  keys.forEachBusy((k, used, cap) => {
    const u = cap > 0 ? used / cap : 0;
    if (best.length === n && u <= best[n - 1]!.u) return;
    let i = best.length === n ? n - 1 : best.length;
    const e = { k, u, used, cap };
    best[i] = e;
    while (i > 0 && best[i - 1]!.u < u) {
      best[i] = best[i - 1]!;
      best[--i] = e;
    }
  });
  return best.map(({ k, u, used, cap }) => {
    const c = keys.capacityInfo(k);
    return {
      netns,
      key: keys.key(k),
      used,
      capacity: cap,
      capacitySource: c.source,
      capacityReason: c.reason,
      utilization: Math.min(u, 1),
      // The last complete second.
      newPerSec: keys.newPerSec(k, nowSec),
    };
  });
}
