// `natwatch events [--netns NAME|PATH|all]... [--nflog-group N]... [--format text|json|ecs] [filters]`:
// raw decoded conntrack and NFLOG events, one per line — the `conntrack -E` of this tool.
// Filters run on the batch cursor before anything is formatted. Output is built per batch and
// written once per batch; loss goes to stderr, at most one line per second per namespace. With
// several namespaces each line says which (`netns=NAME`, JSON and ECS `netns`), and `all`
// follows /var/run/netns while running.
import { groupsFlag, netnsFlags, parse, RCVBUF_MAX, RCVBUF_MIN, sizeFlag } from './args.js';
import { NamespaceFollower, type NetnsTarget } from '../netns-follow.js';
import { formatConntrack, formatLoss, formatNflog } from '../source/format.js';
import { createNetlinkSource, type NetlinkSource } from '../source/netlink-source.js';
import { logDenies, readRuleset } from '../source/ruleset.js';
import type { ConntrackView, LossReport, NflogView, SourceHandlers } from '../source/types.js';
import { UsageError } from '../errors.js';
import { ecsContext, eventToEcs, type EcsContext } from '../server/ecs.js';
import { conntrackMatches, matchesEverything, nflogMatches, parseEventFilter } from './event-filter.js';
import { onStdoutClosed, untilSignal } from './until-signal.js';

const HELP = `usage: natwatch events [--netns NAME|PATH|all]... [--nflog-group N]... [--format text|json|ecs]
                      [--proto P] [--dst IP[:PORT]] [--event LIST] [--nat snat|dnat] [--no-dump] [--rcvbuf SIZE]

Prints decoded conntrack events and NFLOG packets, one per line, until interrupted.
  --netns NAME|PATH|all  watch this network namespace (NAME means /var/run/netns/NAME);
                      repeatable; 'all' = the own one plus every one under /var/run/netns
  --netns-exclude GLOB   with --netns all: leave out names matching GLOB (repeatable)
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
/** A namespace found by `all` whose sockets could not be opened is tried again after this. */
const RETRY_MS = 5000;

export async function run(argv: string[]): Promise<number> {
  const { values } = parse({
    args: argv,
    options: {
      netns: { type: 'string', multiple: true },
      'netns-exclude': { type: 'string', multiple: true },
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
  const ns = netnsFlags(values.netns, values['netns-exclude']);
  const rcvbufBytes = sizeFlag('rcvbuf', values.rcvbuf, RCVBUF_MIN, RCVBUF_MAX);
  if (values.format !== undefined && !(FORMATS as readonly string[]).includes(values.format)) {
    throw new UsageError(`--format: '${values.format}' is not one of ${FORMATS.join(', ')}`);
  }
  if (values.json === true && values.format !== undefined && values.format !== 'json') throw new UsageError(`--json: conflicts with --format ${values.format}`);
  const format = values.json === true ? 'json' : (values.format as (typeof FORMATS)[number] | undefined) ?? 'text';
  const filter = parseEventFilter(values);
  const all = matchesEverything(filter);
  const dump = values['no-dump'] !== true;
  const groupsGiven = groupsFlag(values['nflog-group']);
  const follower = new NamespaceFollower({ netns: ns.netns.length ? ns.netns : [null], exclude: ns.exclude });
  const several = follower.several;
  const line = (v: ConntrackView | NflogView, name: string | null, ecs: EcsContext | null, text: () => string): string => {
    if (format === 'text') return several && name !== null ? `${text()} netns=${name}` : text();
    const e = v.toEvent();
    e.netns = name;
    return JSON.stringify(ecs ? eventToEcs(e, ecs) : e);
  };

  let done = false;
  const sources = new Map<string, NetlinkSource>();
  const opening = new Set<string>();
  const retryAt = new Map<string, number>();
  let pendingLoss: Array<{ name: string | null; r: LossReport }> = [];
  let lossTimer: NodeJS.Timeout | null = null;
  const flushLoss = () => {
    lossTimer = null;
    for (const name of new Set(pendingLoss.map((p) => p.name))) {
      for (const source of ['conntrack', 'nflog'] as const) {
        const rs = pendingLoss.filter((p) => p.name === name && p.r.source === source).map((p) => p.r);
        if (rs.length === 0) continue;
        const sum = (k: 'enobufs' | 'kernelDrops' | 'dropped' | 'seqGap') => rs.reduce((a, r) => a + r[k], 0);
        const text = formatLoss({ source, enobufs: sum('enobufs'), kernelDrops: sum('kernelDrops'), dropped: sum('dropped'), seqGap: sum('seqGap') });
        process.stderr.write((name !== null && several ? text.replace(/^natwatch: /, `natwatch: netns ${name}: `) : text) + '\n');
      }
    }
    pendingLoss = [];
  };
  // Following `all`, the command waits for namespaces even while none is open (the follower's
  // timer does not hold the process).
  const keepAlive = follower.following ? setInterval(() => undefined, 1 << 30) : null;
  const cleanup = async () => {
    done = true;
    follower.stop();
    if (keepAlive) clearInterval(keepAlive);
    if (lossTimer) clearTimeout(lossTimer);
    flushLoss();
    await Promise.allSettled([...sources.values()].map((s) => s.close()));
  };
  const write = (s: string) => {
    if (!done && s.length > 0) process.stdout.write(s);
  };
  const handlers = (name: string | null, ecs: EcsContext | null): SourceHandlers => ({
    conntrack(v) {
      let out = '';
      for (let i = 0; i < v.count; i++) {
        v.seek(i);
        if (all || conntrackMatches(filter, v)) out += line(v, name, ecs, () => formatConntrack(v)) + '\n';
      }
      write(out);
    },
    nflog(v) {
      let out = '';
      for (let i = 0; i < v.count; i++) {
        v.seek(i);
        if (all || nflogMatches(filter, v)) out += line(v, name, ecs, () => formatNflog(v)) + '\n';
      }
      write(out);
    },
    loss(r) {
      pendingLoss.push({ name, r });
      lossTimer ??= setTimeout(flushLoss, LOSS_INTERVAL_MS);
    },
    dumpBegin() {},
    dumpEnd() {},
    error(err) {
      process.stderr.write(`natwatch: ${several && name !== null ? `netns ${name}: ` : ''}${err.message}\n`);
    },
    warn(message) {
      process.stderr.write(`natwatch: ${several && name !== null ? `netns ${name}: ` : ''}${message}\n`);
    },
  });
  const open = async (t: NetnsTarget): Promise<void> => {
    opening.add(t.key);
    try {
      // One ruleset read: the NFLOG groups to bind (unless given) and, for ECS, which log rules drop.
      const ruleset = await readRuleset(t.path).then((r) => r.ruleset, () => null);
      // Groups named on the command line must bind; groups taken from the ruleset are best effort
      // (beside serve or ulogd, one may be held: run without it and retry).
      const bestEffort = groupsGiven.length === 0;
      const groups = bestEffort ? (ruleset?.groups ?? []) : groupsGiven;
      const ecs = format === 'ecs' ? ecsContext({ netns: t.name }) : null;
      if (ecs && ruleset) ecs.nflogDenies = (g, p) => logDenies(ruleset, g, p);
      // The conntrack -E of this tool prints every event: UPDATEs included.
      const source = createNetlinkSource({ netns: t.path, nflogGroups: groups, nflogBestEffort: bestEffort, rcvbufBytes, dump, updates: true });
      await source.start(handlers(t.name, ecs));
      if (done) await source.close();
      else sources.set(t.key, source);
    } finally {
      opening.delete(t.key);
    }
  };
  const failedLater = (t: NetnsTarget, err: Error) => {
    retryAt.set(t.key, Date.now() + RETRY_MS);
    process.stderr.write(`natwatch: netns ${t.name}: ${err.message}\n`);
  };
  // `all`: open what appeared, close what is gone (a found namespace that failed waits RETRY_MS).
  const sync = () => {
    if (done) return;
    const want = new Map(follower.targets().map((t) => [t.key, t]));
    for (const [key, s] of sources) {
      if (want.has(key)) continue;
      sources.delete(key);
      void s.close();
    }
    for (const [key, t] of want) {
      if (sources.has(key) || opening.has(key) || (retryAt.get(key) ?? 0) > Date.now()) continue;
      open(t).catch((err: Error) => failedLater(t, err));
    }
  };
  return untilSignal(cleanup, (stop) => {
    onStdoutClosed(stop);
    const targets = follower.targets();
    void Promise.allSettled(targets.map((t) => open(t))).then((results) => {
      // A namespace given by name or path must open; one found by `all` is tried again later.
      const failed = results.findIndex((r, i) => r.status === 'rejected' && (!targets[i]!.found || sources.size === 0));
      if (failed >= 0) return stop((results[failed] as PromiseRejectedResult).reason as Error);
      results.forEach((r, i) => {
        if (r.status === 'rejected') failedLater(targets[i]!, r.reason as Error);
      });
      follower.start(sync);
    });
  });
}
