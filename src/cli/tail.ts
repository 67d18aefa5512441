// `natwatch tail [ws://…|wss://…]`: live view. With a URL it follows a server's stream
// (reconnecting with since=<last seq>); without one it runs the streamer in-process. On a TTY:
// coloured alert lines above a live table; with --json or a non-TTY stdout: one message per line.
import { parse, groupsFlag, netnsFlags, netnsPath } from './args.js';
import { UsageError } from '../errors.js';
import { setupLogging } from '../log.js';
import type { Alert, ServerMessage, StatsMessage, WireEvent } from '../types.js';
import { TailClient, type ConnState } from './tail-client.js';
import { alertLine, eventLine, printable, TtyView } from './tail-view.js';
import { alertMatches, eventMatches, parseSubscription, type StreamFilter } from '../server/filter.js';
import { controlToEcs, ecsContext, type NflogVerdict } from '../server/ecs.js';
import { toEcs, type Broadcast } from '../server/encode.js';
import { loadStreamerFactory } from './streamer-loader.js';
import { onStdoutClosed, untilSignal, type Stop } from './until-signal.js';

const HELP = `usage: natwatch tail [ws://HOST:PORT|wss://…] [options]

  --netns NAME|PATH|all  watch this namespace in-process (no URL; needs CAP_NET_ADMIN);
                      repeatable; 'all' = the own one plus every one under /var/run/netns
  --netns-exclude GLOB   with --netns all: leave out names matching GLOB (repeatable)
  --nflog-group N     NFLOG group to bind in-process (repeatable)
  --type LIST         alert,stats,event,gap (default alert,stats,gap)
  --token T           bearer token for the server (or NATWATCH_TOKEN)
  --format F          text (terminal view), json (one message per line; the default when stdout
                      is not a terminal) or ecs (one Elastic Common Schema document per line)
  --json              same as --format json
  --dst IP[:PORT]     only alerts and events for this destination
  --severity S        only alerts of at least this severity: warning or critical

environment:
  NATWATCH_TOKEN      the token, when --token is not given
  NATWATCH_LOG_LEVEL  log level (default warn)
  NO_COLOR            no colours in the terminal view

example:
  NATWATCH_TOKEN=$(cat ~/.natwatch-token) natwatch tail wss://gw.example:7600 --type alert --severity critical`;

const FORMATS = ['text', 'json', 'ecs'];

const TYPES = ['alert', 'stats', 'event', 'gap'];

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parse({
    args: argv,
    allowPositionals: true,
    options: {
      netns: { type: 'string', multiple: true },
      'netns-exclude': { type: 'string', multiple: true },
      'nflog-group': { type: 'string', multiple: true },
      type: { type: 'string' },
      token: { type: 'string' },
      json: { type: 'boolean' },
      format: { type: 'string' },
      dst: { type: 'string' },
      severity: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  if (positionals.length > 1) throw new UsageError(`tail: one URL at most, got ${positionals.length}`);
  const url = positionals[0];
  if (url !== undefined && !/^wss?:\/\//.test(url)) throw new UsageError(`tail: '${url}' is not a ws:// or wss:// URL`);
  const local = (['netns', 'netns-exclude', 'nflog-group'] as const).find((f) => values[f] !== undefined);
  if (url !== undefined && local !== undefined) {
    throw new UsageError(`--${local}: only without a URL (the server chooses what it watches)`);
  }
  const ns = netnsFlags(values.netns, values['netns-exclude']);
  const types = parseTypes(values.type);
  if (values.format !== undefined && !FORMATS.includes(values.format)) throw new UsageError(`--format: '${values.format}' is not one of ${FORMATS.join(', ')}`);
  if (values.json === true && values.format !== undefined && values.format !== 'json') throw new UsageError(`--json: conflicts with --format ${values.format}`);
  const format = values.json === true ? 'json' : (values.format ?? (process.stdout.isTTY === true ? 'text' : 'json'));
  const json = format !== 'text';
  const filter = messageFilter(values.dst, values.severity);
  setupLogging({ level: process.env.NATWATCH_LOG_LEVEL ?? 'warn' });

  // ECS documents name one namespace given here; with several, each message's own netns does.
  const sink = format === 'ecs' ? ecsSink(ns.netns.length === 1 && ns.netns[0] !== 'all' ? ns.netns[0] : undefined) : json ? jsonSink() : process.stdout.isTTY === true ? ttySink(types) : lineSink();
  const out = filter ? filtered(sink, filter) : sink;
  // The live table needs stats even when only alerts are printed.
  const wire = !json && !types.includes('stats') ? [...types, 'stats'] : types;
  return url !== undefined
    ? followServer(url, wire, values.token ?? process.env.NATWATCH_TOKEN, out)
    : runLocal(ns, groupsFlag(values['nflog-group']), wire, out);
}

function parseTypes(v: string | undefined): string[] {
  if (v === undefined) return ['alert', 'stats', 'gap'];
  const list = v.split(',').map((s) => s.trim()).filter(Boolean);
  for (const t of list) if (!TYPES.includes(t)) throw new UsageError(`--type: '${t}' is not one of ${TYPES.join(', ')}`);
  if (list.length === 0) throw new UsageError('--type: empty list');
  return list;
}

interface Sink {
  message(m: ServerMessage): void;
  state(text: string): void;
  /** A non-fatal problem worth showing (the view keeps running). */
  warn(text: string): void;
  close(): void;
  /** In-process: the streamer's ruleset says which NFLOG rules drop (ECS `denied`). */
  useNflogVerdict?(v: NflogVerdict): void;
}

function jsonSink(): Sink {
  return {
    message: (m) => void process.stdout.write(JSON.stringify(m) + '\n'),
    state: (text) => void process.stderr.write(`natwatch: ${text}\n`),
    warn: (text) => void process.stderr.write(`natwatch: ${text}\n`),
    close: () => undefined,
  };
}

function ttySink(types: string[]): Sink {
  const view = new TtyView(process.stdout, process.env.NO_COLOR === undefined);
  const onResize = (): void => view.refresh();
  process.stdout.on('resize', onResize);
  return {
    message(m) {
      switch (m.type) {
        case 'alert':
          if (types.includes('alert')) view.alert(m);
          return;
        case 'stats':
          view.state.stats = m;
          view.refresh();
          return;
        case 'event':
          view.print([eventLine(m)]);
          return;
        case 'gap':
          view.print([`… ${Number(m.dropped)} messages skipped (${printable(m.reason)})`]);
          return;
        case 'hello':
          view.state.status = `${view.state.status.split(' — ')[0]} — ${printable(m.host)}${m.netns ? ` netns ${printable(m.netns)}` : ''} (natwatch ${printable(m.version)})`;
          view.refresh();
          return;
      }
    },
    state(text) {
      view.state.status = text;
      view.refresh();
    },
    warn(text) {
      view.print([`natwatch: ${printable(text)}`]);
    },
    close() {
      process.stdout.off('resize', onResize);
      view.close();
    },
  };
}

async function followServer(url: string, types: string[], token: string | undefined, out: Sink): Promise<number> {
  const client = new TailClient({ url, types, ...(token ? { token } : {}) });
  client.on('message', (m) => out.message(m));
  client.on('state', (s: ConnState) => out.state(stateText(url, s, client.lastSeq)));
  client.start();
  return untilSignal(
    () => {
      client.stop();
      out.close();
    },
    (stop) => {
      client.on('fatal', stop);
      onStdoutClosed(stop);
    },
  );
}

function stateText(url: string, s: ConnState, seq: number | null): string {
  switch (s.state) {
    case 'connecting':
      return `${url} connecting${s.attempt > 1 ? ` (attempt ${s.attempt})` : ''}…`;
    case 'open':
      return `${url} connected${seq !== null ? `, alerts since #${seq}` : ''}`;
    case 'waiting':
      return `${url} ${s.reason}; retrying in ${(s.retryInMs / 1000).toFixed(1)} s`;
  }
}

async function runLocal(ns: { netns: string[]; exclude: string[] }, groups: number[], types: string[], out: Sink): Promise<number> {
  const createStreamer = await loadStreamerFactory();
  const streamer = createStreamer({
    ...(ns.netns.length ? { netns: ns.netns } : {}),
    ...(ns.exclude.length ? { netnsExclude: ns.exclude } : {}),
    ...(groups.length ? { nflogGroups: groups } : {}),
  });
  const onAlert = (a: Alert): void => out.message(a);
  const onStats = (s: StatsMessage): void => out.message(s);
  const onEvent = (e: WireEvent): void => out.message(e);
  if (types.includes('alert')) streamer.on('alert', onAlert);
  if (types.includes('stats')) streamer.on('stats', onStats);
  if (types.includes('event')) streamer.on('event', onEvent);
  // Streamer errors are per batch or per poll and the pipeline carries on: show, keep going.
  streamer.on('error', (err) => out.warn(err.message));
  out.useNflogVerdict?.((g, p, n) => streamer.nflogDenies?.(g, p, n) ?? null);
  await streamer.start();
  out.state(`in-process ${ns.netns.length ? `netns ${ns.netns.join(', ')}` : 'current namespace'}`);
  return untilSignal(
    async () => {
      await streamer.close();
      out.close();
    },
    (stop: Stop) => onStdoutClosed(stop),
  );
}

/** --dst / --severity as a stream filter (the server's own matching rules), or null for none. */
function messageFilter(dst: string | undefined, severity: string | undefined): StreamFilter | null {
  if (dst === undefined && severity === undefined) return null;
  try {
    return parseSubscription({ types: 'alert,stats,event,gap', ...(dst !== undefined ? { dst } : {}), ...(severity !== undefined ? { severity } : {}) }).filter;
  } catch (err) {
    throw new UsageError(`--${(err as Error).message}`);
  }
}

function filtered(out: Sink, f: StreamFilter): Sink {
  return {
    ...out,
    message(m) {
      if (m.type === 'alert' && !alertMatches(f, m)) return;
      if (m.type === 'event' && !eventMatches(f, m)) return;
      out.message(m);
    },
  };
}

/** `--format text` to a pipe or file: the terminal view's lines, without the live table. */
function lineSink(): Sink {
  return {
    message(m) {
      if (m.type === 'alert') process.stdout.write(alertLine(m, false) + '\n');
      else if (m.type === 'event') process.stdout.write(eventLine(m) + '\n');
      else if (m.type === 'gap') process.stdout.write(`… ${Number(m.dropped)} messages skipped (${printable(m.reason)})\n`);
    },
    state: (text) => void process.stderr.write(`natwatch: ${text}\n`),
    warn: (text) => void process.stderr.write(`natwatch: ${text}\n`),
    close: () => undefined,
  };
}

/** One ECS document per line; a server's hello says which gateway and namespace it is. */
function ecsSink(netns: string | undefined): Sink {
  let ctx = ecsContext({ netns: netnsPath(netns) });
  return {
    useNflogVerdict(v) {
      ctx.nflogDenies = v;
    },
    message(m) {
      if (m.type === 'hello') ctx = ecsContext({ host: m.host, netns: m.netns });
      const doc = m.type === 'alert' || m.type === 'stats' || m.type === 'event' ? toEcs({ type: m.type, msg: m } as Broadcast, ctx) : controlToEcs(m as unknown as { type: string } & Record<string, unknown>, ctx);
      process.stdout.write(JSON.stringify(doc) + '\n');
    },
    state: (text) => void process.stderr.write(`natwatch: ${text}\n`),
    warn: (text) => void process.stderr.write(`natwatch: ${text}\n`),
    close: () => undefined,
  };
}
