// `natwatch tail [ws://…|wss://…]`: live view. With a URL it follows a server's stream
// (reconnecting with since=<last seq>); without one it runs the streamer in-process. On a TTY:
// coloured alert lines above a live table; with --json or a non-TTY stdout: one message per line.
import { parse, groupsFlag, netnsPath } from './args.js';
import { UsageError } from '../errors.js';
import { setupLogging } from '../log.js';
import type { Alert, ServerMessage, StatsMessage, WireEvent } from '../types.js';
import { TailClient, type ConnState } from './tail-client.js';
import { eventLine, printable, TtyView } from './tail-view.js';
import { loadStreamerFactory } from './streamer-loader.js';
import { onStdoutClosed, untilSignal, type Stop } from './until-signal.js';

const HELP = `usage: natwatch tail [ws://HOST:PORT|wss://…] [options]

  --netns NAME|PATH   watch this namespace in-process (no URL; needs CAP_NET_ADMIN)
  --nflog-group N     NFLOG group to bind in-process (repeatable)
  --type LIST         alert,stats,event,gap (default alert,stats,gap)
  --token T           bearer token for the server (or NATWATCH_TOKEN)
  --json              one JSON message per line (also when stdout is not a terminal)

environment:
  NATWATCH_TOKEN      the token, when --token is not given
  NATWATCH_LOG_LEVEL  log level (default warn)
  NO_COLOR            no colours in the terminal view

example:
  NATWATCH_TOKEN=$(cat ~/.natwatch-token) natwatch tail wss://gw.example:7600 --type alert`;

const TYPES = ['alert', 'stats', 'event', 'gap'];

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parse({
    args: argv,
    allowPositionals: true,
    options: {
      netns: { type: 'string' },
      'nflog-group': { type: 'string', multiple: true },
      type: { type: 'string' },
      token: { type: 'string' },
      json: { type: 'boolean' },
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
  if (url !== undefined && (values.netns !== undefined || values['nflog-group'] !== undefined)) {
    throw new UsageError(`--${values.netns !== undefined ? 'netns' : 'nflog-group'}: only without a URL (the server chooses what it watches)`);
  }
  const types = parseTypes(values.type);
  const json = values.json === true || process.stdout.isTTY !== true;
  setupLogging({ level: process.env.NATWATCH_LOG_LEVEL ?? 'warn' });

  const out = json ? jsonSink() : ttySink(types);
  // The live table needs stats even when only alerts are printed.
  const wire = !json && !types.includes('stats') ? [...types, 'stats'] : types;
  return url !== undefined
    ? followServer(url, wire, values.token ?? process.env.NATWATCH_TOKEN, out)
    : runLocal(values.netns, groupsFlag(values['nflog-group']), wire, out);
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

async function runLocal(netns: string | undefined, groups: number[], types: string[], out: Sink): Promise<number> {
  const path = netnsPath(netns);
  const createStreamer = await loadStreamerFactory();
  const streamer = createStreamer({ ...(path ? { netns: path } : {}), ...(groups.length ? { nflogGroups: groups } : {}) });
  const onAlert = (a: Alert): void => out.message(a);
  const onStats = (s: StatsMessage): void => out.message(s);
  const onEvent = (e: WireEvent): void => out.message(e);
  if (types.includes('alert')) streamer.on('alert', onAlert);
  if (types.includes('stats')) streamer.on('stats', onStats);
  if (types.includes('event')) streamer.on('event', onEvent);
  // Streamer errors are per batch or per poll and the pipeline carries on: show, keep going.
  streamer.on('error', (err) => out.warn(err.message));
  await streamer.start();
  out.state(`in-process ${path ?? 'current namespace'}`);
  return untilSignal(
    async () => {
      await streamer.close();
      out.close();
    },
    (stop: Stop) => onStdoutClosed(stop),
  );
}
