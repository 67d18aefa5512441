// `natwatch top`: one-shot, no daemon. Subscribes, dumps the conntrack table once, reads the
// kernel counters, prints the busiest destinations (the same numbers as /v1/top and `tail`'s
// table, capacity from the ruleset as serve reads it) and exits.
import { parse, netnsPath, portRangeFlag } from './args.js';
import { NatwatchError } from '../errors.js';
import { checkNetns } from '../netns.js';
import { endpoint } from '../endpoint.js';
import type { EventSource, SourceHandlers } from '../source/types.js';
import type { StatsMessage } from '../types.js';
import { loadStreamerFactory } from './streamer-loader.js';

const HELP = `usage: natwatch top [--netns NAME|PATH] [--nat-ports A-B] [--json]

Dumps the conntrack table once, reads the kernel counters, prints the table use, the kernel
drop counters and the 10 busiest destinations by NAT/local port use, and exits.
  --netns NAME|PATH   the network namespace to look at (NAME = /var/run/netns/NAME)
  --nat-ports A-B     NAT source port range, when the ruleset does not say it
  --json              the stats object (the WebSocket 'stats' shape) instead of the table

environment: none read

example:
  natwatch top --netns gw`;

/** Bound on the dump (a million entries dump in a few seconds). */
const DUMP_TIMEOUT_MS = 60_000;

export async function run(argv: string[]): Promise<number> {
  const { values } = parse({
    args: argv,
    options: {
      netns: { type: 'string' },
      'nat-ports': { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  const netns = netnsPath(values.netns);
  const natPorts = portRangeFlag('nat-ports', values['nat-ports']);
  if (netns !== null) checkNetns(netns);

  const { createNetlinkSource } = await import('../source/netlink-source.js');
  // The streamer's own wiring (ruleset capacities, addresses, tracker) over a source whose
  // end of dump we can wait for.
  let dumped!: () => void;
  const dumpDone = new Promise<void>((r) => (dumped = r));
  const inner = createNetlinkSource({ netns, nflogGroups: [], dump: true });
  const source: EventSource = {
    start: (h: SourceHandlers) =>
      inner.start({
        ...h,
        dumpEnd() {
          h.dumpEnd();
          dumped();
        },
      }),
    resync: () => inner.resync(),
    readCounters: () => inner.readCounters(),
    get rcvbuf() {
      return inner.rcvbuf;
    },
    close: () => inner.close(),
  };
  const createStreamer = await loadStreamerFactory();
  const streamer = createStreamer({ ...(netns ? { netns } : {}), ...(natPorts ? { natPorts } : {}), source, detectRuleset: true, statsIntervalMs: 3_600_000 });
  try {
    await streamer.start();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      dumpDone,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new NatwatchError('ERUNTIME', `the conntrack table dump did not end within ${DUMP_TIMEOUT_MS / 1000} s`)), DUMP_TIMEOUT_MS);
      }),
    ]).finally(() => clearTimeout(timer));
    await streamer.tick();
    const stats = streamer.lastStats();
    if (!stats) throw new NatwatchError('ERUNTIME', 'could not read the conntrack counters');
    process.stdout.write(values.json ? JSON.stringify(stats) + '\n' : formatTop(stats));
    return 0;
  } finally {
    await streamer.close();
  }
}

const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;

/** The table `natwatch top` prints. */
export function formatTop(s: StatsMessage): string {
  const c = s.conntrack;
  const lines: string[] = [];
  lines.push(`conntrack  ${c.count}/${c.max} entries (${c.max > 0 ? pct(c.count / c.max) : '-'})  ${c.buckets} buckets`);
  const k = s.counters;
  lines.push(`kernel     insert_failed ${k.insert_failed}  drop ${k.drop}  early_drop ${k.early_drop}  invalid ${k.invalid}  error ${k.error}  clash_resolve ${k.clash_resolve}`);
  lines.push('');
  if (s.top.length === 0) {
    lines.push('no connections with NAT or local source ports');
    return lines.join('\n') + '\n';
  }
  const rows = s.top.map((e) => [e.key.proto, e.key.natIp, endpoint(e.key.dstIp, e.key.dstPort), String(e.used), String(e.capacity), pct(e.utilization)]);
  const head = ['PROTO', 'SOURCE/NAT IP', 'DESTINATION', 'USED', 'LIMIT', 'USE'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const right = new Set([3, 4, 5]);
  const fmt = (r: string[]): string => r.map((v, i) => (right.has(i) ? v.padStart(widths[i]!) : v.padEnd(widths[i]!))).join('  ').trimEnd();
  lines.push(fmt(head));
  for (const r of rows) lines.push(fmt(r));
  return lines.join('\n') + '\n';
}
