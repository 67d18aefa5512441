// Cost of the per-NAT-address pass behind natwatch_nat_address_max_utilization_ratio (the only
// part of a /metrics scrape that walks every key): N synthetic SNAT destinations over 8 NAT
// addresses, 15 runs, min-max and median. Run after `npm run build`: node scripts/bench-metrics.mjs
import { Tracker } from '../dist/track/tracker.js';
import { CapacityResolver } from '../dist/track/capacity.js';
import { SyntheticSource, snatFlow } from '../dist/source/synthetic.js';
import { natAddresses } from '../dist/track/nat-addresses.js';
for (const keys of [1_000, 100_000]) {
  const tracker = new Tracker({ capacity: new CapacityResolver({ natPorts: [1024, 65535] }) });
  const src = new SyntheticSource({ now: () => 1e6 });
  await src.start({ conntrack: (v) => tracker.onConntrack(v, 1000), nflog() {}, loss() {}, error() {}, dumpBegin() {}, dumpEnd() {} });
  const recs = [];
  for (let i = 0; i < keys; i++) {
    const nat = `198.51.100.${1 + (i % 8)}`;
    const dst = `203.0.${113 + ((i >> 16) & 1)}.${(i >> 8) & 255}`;
    recs.push(snatFlow(1, i + 1, { src: '192.0.2.5', sport: 1024 + (i % 60000), dst, dport: 1 + (i & 255), natIp: nat, natPort: 2000 + (i % 60000) }));
    if (recs.length === 4096) { src.conntrack(recs); recs.length = 0; }
  }
  src.conntrack(recs);
  const runs = [];
  for (let r = 0; r < 15; r++) { const t = process.hrtime.bigint(); natAddresses(tracker); runs.push(Number(process.hrtime.bigint() - t) / 1e6); }
  runs.sort((a, b) => a - b);
  console.log(`${keys} keys (${tracker.occ.count} interned): natAddresses ${runs[0].toFixed(2)}-${runs[14].toFixed(2)} ms, median ${runs[7].toFixed(2)} ms`);
}
