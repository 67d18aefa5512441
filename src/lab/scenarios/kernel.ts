// The kernel's own account, read with the stock tools inside a lab namespace: `conntrack -S`
// (per-CPU counters), `conntrack -C`, `conntrack -L`, nft rule counters. Scenarios compare
// these with what natwatch reports; none of this goes through natwatch's code.
import type { Lab } from '../topology.js';
import type { KernelSnapshot } from './types.js';

async function must(lab: Lab, ns: string, cmd: string, args: string[]): Promise<string> {
  const r = await lab.exec(ns, cmd, args, { timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} in ${ns}: ${r.stderr.trim() || `exit ${r.code}`}`);
  return r.stdout;
}

/** `conntrack -S` lines ("cpu=0 found=0 invalid=3 ...") summed over CPUs. */
function parseConntrackStats(text: string): Record<string, number> {
  const sum: Record<string, number> = {};
  for (const line of text.split('\n')) {
    for (const m of line.matchAll(/(\w+)=(\d+)/g)) {
      if (m[1] === 'cpu') continue;
      sum[m[1]!] = (sum[m[1]!] ?? 0) + Number(m[2]);
    }
  }
  return sum;
}

export async function snapshot(lab: Lab, ns: string): Promise<KernelSnapshot> {
  const [stats, count] = await Promise.all([must(lab, ns, 'conntrack', ['-S']), must(lab, ns, 'conntrack', ['-C'])]);
  return { counters: parseConntrackStats(stats), count: Number(count.trim()) };
}

/** Counter deltas that moved, e.g. { insert_failed: 12, drop: 12 }. */
export function deltas(before: KernelSnapshot, after: KernelSnapshot): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after.counters)) {
    const d = v - (before.counters[k] ?? 0);
    if (d !== 0) out[k] = d;
  }
  return out;
}

export function formatDeltas(d: Record<string, number>): string {
  const parts = Object.entries(d).map(([k, v]) => `${k} +${v}`);
  return parts.length ? parts.join(', ') : 'no counter moved';
}

export interface CtEntry {
  proto: string;
  state: string | null;
  orig: { src: string; dst: string; sport: number; dport: number };
  reply: { src: string; dst: string; sport: number; dport: number };
}

/**
 * `conntrack -L` (optionally filtered, e.g. ['-p', 'tcp', '--dport', '80']) parsed into
 * original and reply tuples. IPv4 unless family is 'ipv6'.
 */
export async function listEntries(lab: Lab, ns: string, args: string[] = [], family: 'ipv4' | 'ipv6' = 'ipv4'): Promise<CtEntry[]> {
  const out = await must(lab, ns, 'conntrack', ['-L', '-f', family, ...args]);
  const entries: CtEntry[] = [];
  for (const line of out.split('\n')) {
    const words = line.trim().split(/\s+/);
    if (words.length < 4 || !/^\d+$/.test(words[1] ?? '')) continue;
    const proto = words[0]!;
    const state = /^[A-Z_]+$/.test(words[3] ?? '') ? words[3]! : null;
    const kv = words.filter((w) => w.includes('='));
    const pick = (name: string, nth: number) => kv.filter((w) => w.startsWith(name + '='))[nth]?.slice(name.length + 1) ?? '';
    const tuple = (nth: number) => ({
      src: pick('src', nth),
      dst: pick('dst', nth),
      sport: Number(pick('sport', nth) || pick('id', nth) || 0),
      dport: Number(pick('dport', nth) || pick('id', nth) || 0),
    });
    entries.push({ proto, state, orig: tuple(0), reply: tuple(1) });
  }
  return entries;
}

/** Packets counted by the nft rule whose text contains `needle` (rule needs a `counter`). */
export async function nftRulePackets(lab: Lab, ns: string, needle: string): Promise<number> {
  const out = await must(lab, ns, 'nft', ['list', 'ruleset']);
  const line = out.split('\n').find((l) => l.includes(needle) && l.includes('counter'));
  const m = line && /packets (\d+)/.exec(line);
  return m ? Number(m[1]) : 0;
}

/** Polls `probe` until it returns true or `timeoutMs` passes; returns the last answer. */
export async function pollUntil(probe: () => Promise<boolean>, timeoutMs: number, everyMs = 200): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * The kernel frees expired entries lazily: its GC worker runs up to 60 s apart (less when
 * much expires), or a lookup/dump meets them. Until then they stay in the table and no
 * DESTROY event is sent, so a watcher keeps seeing the flows. A dump reaps them at once:
 * while `until` is pending, list R's table (both families) every `everyMs`.
 */
export async function reapWhile<T>(lab: Lab, ns: string, until: Promise<T>, everyMs = 1_000): Promise<T> {
  let done = false;
  const settled = until.finally(() => (done = true));
  const loop = (async () => {
    while (!done) {
      await lab.exec(ns, 'conntrack', ['-L', '-f', 'ipv4'], { timeoutMs: 5_000 });
      await lab.exec(ns, 'conntrack', ['-L', '-f', 'ipv6'], { timeoutMs: 5_000 });
      await Promise.race([settled.catch(() => {}), new Promise((r) => setTimeout(r, everyMs))]);
    }
  })();
  try {
    return await settled;
  } finally {
    await loop;
  }
}
