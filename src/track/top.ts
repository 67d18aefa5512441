// The top keys by utilization for stats/`/v1/top`: one pass over the keys keeping the best n
// in a small sorted array (no sort of all keys).
import type { TopEntry } from '../types.js';
import { C_NEW } from './rings.js';
import type { Tracker } from './tracker.js';

export function topKeys(tracker: Tracker, n: number, nowSec: number): TopEntry[] {
  const { occ } = tracker;
  const best: Array<{ k: number; u: number }> = [];
  for (let k = 0; k < occ.high; k++) {
    const used = occ.used[k]!;
    if (used === 0) continue;
    const cap = tracker.capacityOf(k);
    const u = cap > 0 ? used / cap : 0;
    if (best.length === n && u <= best[n - 1]!.u) continue;
    let i = best.length === n ? n - 1 : best.length;
    best[i] = { k, u };
    while (i > 0 && best[i - 1]!.u < u) {
      best[i] = best[i - 1]!;
      best[--i] = { k, u };
    }
  }
  return best.map(({ k, u }) => {
    const key = occ.key(k);
    const c = tracker.capacity.infoOf(occ.local[k] === 1, key);
    return {
      key,
      used: occ.used[k]!,
      capacity: occ.cap[k]!,
      capacitySource: c.source,
      capacityReason: c.reason,
      utilization: Math.min(u, 1),
      // The last complete second.
      newPerSec: tracker.rings.sum(k, C_NEW, nowSec - 1, 1),
    };
  });
}
