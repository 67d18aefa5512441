#!/usr/bin/env node
// Self and total time per function of a V8 .cpuprofile (node --cpu-prof), top N by self time.
//   node scripts/profile-summary.mjs FILE.cpuprofile [N]
import { readFileSync } from 'node:fs';

const [file, nArg] = process.argv.slice(2);
if (!file) {
  console.error('usage: profile-summary.mjs FILE.cpuprofile [N]');
  process.exit(2);
}
const prof = JSON.parse(readFileSync(file, 'utf8'));
const byId = new Map(prof.nodes.map((n) => [n.id, n]));
const parent = new Map();
for (const n of prof.nodes) for (const c of n.children ?? []) parent.set(c, n.id);

// Each sample's interval is the next timeDelta (the first delta is the gap before sample 0).
const selfUs = new Map();
for (let i = 0; i < prof.samples.length; i++) {
  const dt = prof.timeDeltas[i + 1] ?? 0;
  selfUs.set(prof.samples[i], (selfUs.get(prof.samples[i]) ?? 0) + dt);
}
const label = (n) => {
  const f = n.callFrame;
  const where = f.url ? `${f.url.replace(/^.*\/(dist|src|node_modules)\//, '$1/')}:${f.lineNumber + 1}` : '';
  return `${f.functionName || '(anonymous)'} ${where}`.trim();
};
const self = new Map();
const total = new Map();
let all = 0;
for (const [id, us] of selfUs) {
  all += us;
  const l = label(byId.get(id));
  self.set(l, (self.get(l) ?? 0) + us);
  // Total: count each label once per stack (recursion).
  const seen = new Set();
  for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
    const cl = label(byId.get(cur));
    if (seen.has(cl)) continue;
    seen.add(cl);
    total.set(cl, (total.get(cl) ?? 0) + us);
  }
}
const top = [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(nArg ?? 30));
const ms = (us) => (us / 1000).toFixed(1).padStart(8);
console.log(`profile: ${(all / 1000).toFixed(1)} ms sampled`);
console.log(`${'self ms'.padStart(8)} ${'self%'.padStart(6)} ${'total ms'.padStart(8)}  function`);
for (const [l, us] of top) console.log(`${ms(us)} ${((100 * us) / all).toFixed(1).padStart(6)} ${ms(total.get(l))}  ${l}`);
