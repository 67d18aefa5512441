// `natwatch events [--netns NAME|PATH] [--nflog-group N]... [--format text|json|ecs] [filters]`:
// raw decoded conntrack and NFLOG events, one per line — the `conntrack -E` of this tool.
// Filters run on the batch cursor before anything is formatted. Output is built per batch and
// written once per batch; loss goes to stderr, at most one line per second.
import { groupsFlag, netnsPath, parse, RCVBUF_MAX, RCVBUF_MIN, sizeFlag } from './args.js';
import { formatConntrack, formatLoss, formatNflog } from '../source/format.js';
import { createNetlinkSource } from '../source/netlink-source.js';
import { logDenies, readRuleset } from '../source/ruleset.js';
import type { LossReport, SourceHandlers } from '../source/types.js';
import { UsageError } from '../errors.js';
import { ecsContext, eventToEcs } from '../server/ecs.js';
import { conntrackMatches, matchesEverything, nflogMatches, parseEventFilter } from './event-filter.js';
import { onStdoutClosed, untilSignal } from './until-signal.js';

const HELP = `usage: natwatch events [--netns NAME|PATH] [--nflog-group N]... [--format text|json|ecs]
                      [--proto P] [--dst IP[:PORT]] [--event LIST] [--nat snat|dnat] [--no-dump] [--rcvbuf SIZE]

Prints decoded conntrack events and NFLOG packets, one per line, until interrupted.
  --netns NAME|PATH   watch this network namespace (NAME means /var/run/netns/NAME)
  --nflog-group N     bind NFLOG group N (repeatable); default: the groups the ruleset logs to
  --format F          text (default), json (the WebSocket 'event' shape), ecs (Elastic Common Schema)
  --json              same as --format json
  --proto LIST        only these protocols: tcp,udp,icmp,icmpv6,... or numbers
  --dst IP[:PORT]     only this original destination ([IPv6]:PORT for IPv6 with a port)
  --event LIST        only these conntrack events: new,update,destroy (table dump records count as new)
  --nat LIST          only connections with this NAT: snat, dnat (or both: snat,dnat)
  --no-dump           do not list the existing table first
  --rcvbuf SIZE       netlink receive buffer, e.g. 64M (default); small values lose events
--event and --nat select conntrack records only (NFLOG packets have neither).

environment: none read

example:
  natwatch events --netns gw --format ecs --dst 198.51.100.8:443 --event new | head -20`;

const FORMATS = ['text', 'json', 'ecs'] as const;

const LOSS_INTERVAL_MS = 1000;

export async function run(argv: string[]): Promise<number> {
  const { values } = parse({
    args: argv,
    options: {
      netns: { type: 'string' },
      'nflog-group': { type: 'string', multiple: true },
      json: { type: 'boolean' },
      format: { type: 'string' },
      proto: { type: 'string' },
      dst: { type: 'string' },
      event: { type: 'string' },
      nat: { type: 'string' },
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
  if (values.format !== undefined && !(FORMATS as readonly string[]).includes(values.format)) {
    throw new UsageError(`--format: '${values.format}' is not one of ${FORMATS.join(', ')}`);
  }
  if (values.json === true && values.format !== undefined && values.format !== 'json') throw new UsageError(`--json: conflicts with --format ${values.format}`);
  const format = values.json === true ? 'json' : (values.format as (typeof FORMATS)[number] | undefined) ?? 'text';
  const filter = parseEventFilter(values);
  const all = matchesEverything(filter);
  const ecs = format === 'ecs' ? ecsContext({ netns }) : null;
  const line = (v: { toEvent(): Parameters<typeof eventToEcs>[0] }, text: () => string): string =>
    format === 'text' ? text() : JSON.stringify(ecs ? eventToEcs(v.toEvent(), ecs) : v.toEvent());
  // One ruleset read: the NFLOG groups to bind (unless given) and, for ECS, which log rules drop.
  const ruleset = await readRuleset(netns).then((r) => r.ruleset, () => null);
  let groups = groupsFlag(values['nflog-group']);
  if (groups.length === 0) groups = ruleset?.groups ?? [];
  if (ecs && ruleset) ecs.nflogDenies = (g, p) => logDenies(ruleset, g, p);
  const source = createNetlinkSource({ netns, nflogGroups: groups, rcvbufBytes, dump: values['no-dump'] !== true });

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
          if (all || conntrackMatches(filter, v)) out += line(v, () => formatConntrack(v)) + '\n';
        }
        write(out);
      },
      nflog(v) {
        let out = '';
        for (let i = 0; i < v.count; i++) {
          v.seek(i);
          if (all || nflogMatches(filter, v)) out += line(v, () => formatNflog(v)) + '\n';
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
    };
    source.start(handlers).catch((err: unknown) => stop(err as Error));
  });
}
