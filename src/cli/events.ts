// `natwatch events [--netns NAME|PATH] [--nflog-group N]... [--json] [--no-dump]`: raw decoded
// conntrack and NFLOG events, one per line — the `conntrack -E` of this tool. Output is built
// per batch and written once per batch; loss goes to stderr, at most one line per second.
import { groupsFlag, netnsPath, parse, RCVBUF_MAX, RCVBUF_MIN, sizeFlag } from './args.js';
import { formatConntrack, formatLoss, formatNflog } from '../source/format.js';
import { createNetlinkSource } from '../source/netlink-source.js';
import { nflogGroupsFromRuleset } from '../source/ruleset.js';
import type { LossReport, SourceHandlers } from '../source/types.js';
import { onStdoutClosed, untilSignal } from './until-signal.js';

const HELP = `usage: natwatch events [--netns NAME|PATH] [--nflog-group N]... [--json] [--no-dump] [--rcvbuf SIZE]

Prints decoded conntrack events and NFLOG packets, one per line, until interrupted.
  --netns NAME|PATH   watch this network namespace (NAME means /var/run/netns/NAME)
  --nflog-group N     bind NFLOG group N (repeatable); default: the groups the ruleset logs to
  --json              one JSON event object per line (the WebSocket 'event' shape)
  --no-dump           do not list the existing table first
  --rcvbuf SIZE       netlink receive buffer, e.g. 64M (default); small values lose events

environment: none read

example:
  natwatch events --netns gw --json | head -20`;

const LOSS_INTERVAL_MS = 1000;

export async function run(argv: string[]): Promise<number> {
  const { values } = parse({
    args: argv,
    options: {
      netns: { type: 'string' },
      'nflog-group': { type: 'string', multiple: true },
      json: { type: 'boolean' },
      'no-dump': { type: 'boolean' },
      rcvbuf: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  const netns = netnsPath(values.netns);
  const rcvbufBytes = sizeFlag('rcvbuf', values.rcvbuf, RCVBUF_MIN, RCVBUF_MAX);
  let groups = groupsFlag(values['nflog-group']);
  // Groups named on the command line must bind; groups taken from the ruleset are best effort
  // (beside serve or ulogd, one may be held: run without it and retry).
  const bestEffort = groups.length === 0;
  if (bestEffort) groups = await nflogGroupsFromRuleset(netns).catch(() => []);
  const json = values.json === true;
  // The conntrack -E of this tool prints every event: UPDATEs included.
  const source = createNetlinkSource({ netns, nflogGroups: groups, nflogBestEffort: bestEffort, rcvbufBytes, dump: values['no-dump'] !== true, updates: true });

  let done = false;
  let pendingLoss: LossReport[] = [];
  let lossTimer: NodeJS.Timeout | null = null;
  const flushLoss = () => {
    lossTimer = null;
    for (const source of ['conntrack', 'nflog'] as const) {
      const rs = pendingLoss.filter((r) => r.source === source);
      if (rs.length === 0) continue;
      const sum = (k: 'enobufs' | 'kernelDrops' | 'dropped' | 'seqGap') => rs.reduce((a, r) => a + r[k], 0);
      process.stderr.write(formatLoss({ source, enobufs: sum('enobufs'), kernelDrops: sum('kernelDrops'), dropped: sum('dropped'), seqGap: sum('seqGap') }) + '\n');
    }
    pendingLoss = [];
  };
  const cleanup = async () => {
    done = true;
    if (lossTimer) clearTimeout(lossTimer);
    flushLoss();
    await source.close();
  };
  return untilSignal(cleanup, (stop) => {
    onStdoutClosed(stop);
    const write = (s: string) => {
      if (!done && s.length > 0) process.stdout.write(s);
    };
    const handlers: SourceHandlers = {
      conntrack(v) {
        let out = '';
        for (let i = 0; i < v.count; i++) {
          v.seek(i);
          out += (json ? JSON.stringify(v.toEvent()) : formatConntrack(v)) + '\n';
        }
        write(out);
      },
      nflog(v) {
        let out = '';
        for (let i = 0; i < v.count; i++) {
          v.seek(i);
          out += (json ? JSON.stringify(v.toEvent()) : formatNflog(v)) + '\n';
        }
        write(out);
      },
      loss(r) {
        pendingLoss.push(r);
        lossTimer ??= setTimeout(flushLoss, LOSS_INTERVAL_MS);
      },
      dumpBegin() {},
      dumpEnd() {},
      error(err) {
        process.stderr.write(`natwatch: ${err.message}\n`);
      },
      warn(message) {
        process.stderr.write(`natwatch: ${message}\n`);
      },
    };
    source.start(handlers).catch((err: unknown) => stop(err as Error));
  });
}
