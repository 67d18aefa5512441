// `natwatch serve`: the daemon. Streamer (netlink source → tracker → alerts) plus the WebSocket
// stream and HTTP endpoints on one port. SIGTERM/SIGINT: clients closed 1001, logs flushed,
// exit 0. SIGHUP: the config file is read again (token, thresholds, NAT ports and rules).
import { readFileSync } from 'node:fs';
import { parse } from './args.js';
import { UsageError } from '../errors.js';
import { checkNetns } from '../doctor/facts.js';
import { flushLogs, logger, setupLogging } from '../log.js';
import { readConfigFile, resolveSettings, type RawSettings, type ServeSettings } from './serve-config.js';
import { startServer } from '../server/index.js';
import { loadStreamerFactory } from './streamer-loader.js';
import type { Streamer, StreamerOptions } from '../streamer.js';
import { thresholds as makeThresholds, type Thresholds } from '../alert/thresholds.js';

const HELP = `usage: natwatch serve [options]

  --listen HOST:PORT     where to listen (default 127.0.0.1:7600); non-loopback needs --token
  --netns NAME|PATH      network namespace to watch (NAME = /var/run/netns/NAME)
  --nat-ports A-B        NAT source port range, when the ruleset does not say it
  --nflog-group N        NFLOG group to bind (repeatable; default: groups named by the ruleset)
  --nflog-retry S        retry a ruleset group another program holds every S seconds (default 30)
  --token T              require 'Authorization: Bearer T' or '?token=T' (not for /healthz)
  --tls-cert F --tls-key F   serve wss:// and https://
  --config FILE          JSON or YAML with the same fields (flags win); re-read on SIGHUP
  --log-level LEVEL      fatal|error|warn|info|debug|trace|silent (default info)
  --rcvbuf SIZE          netlink receive buffer, e.g. 64M (default); small values lose events

endpoints: ws(s)://HOST:PORT/v1/stream, /healthz, /metrics, /v1/alerts, /v1/top`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parse({
    args: argv,
    options: {
      listen: { type: 'string' },
      netns: { type: 'string' },
      'nat-ports': { type: 'string' },
      'nflog-group': { type: 'string', multiple: true },
      token: { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      config: { type: 'string' },
      'log-level': { type: 'string' },
      rcvbuf: { type: 'string' },
      'nflog-retry': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  const flags: RawSettings = {
    listen: values.listen,
    netns: values.netns,
    natPorts: values['nat-ports'],
    nflogGroups: values['nflog-group'],
    token: values.token,
    tlsCert: values['tls-cert'],
    tlsKey: values['tls-key'],
    logLevel: values['log-level'],
    nflogRetry: values['nflog-retry'],
    rcvbuf: values.rcvbuf,
  };
  const configPath = values.config;
  const settings = resolveSettings(flags, configPath ? readConfigFile(configPath) : {});
  const tls = settings.tlsCert ? { cert: readPem('--tls-cert', settings.tlsCert), key: readPem('--tls-key', settings.tlsKey!) } : undefined;
  if (settings.netns !== null) checkNetns(settings.netns);

  setupLogging({ level: settings.logLevel });
  const log = logger('serve');
  const createStreamer = await loadStreamerFactory();
  const streamer = createStreamer(streamerOptions(settings));
  // Errors raised while starting are logged only if the start succeeds: when it fails, its
  // own one-line cause says it all (e.g. missing CAP_NET_ADMIN also fails the ruleset read).
  let early: Error[] | null = [];
  streamer.on('error', (err) => (early ? early.push(err) : log.error({ err: err.message }, 'streamer error')));
  streamer.on('warning', (message) => log.warn(message));
  await streamer.start();
  for (const err of early) log.error({ err: err.message }, 'streamer error');
  early = null;

  let server;
  try {
    server = await startServer(streamer, { host: settings.host, port: settings.port, token: settings.token, tls, logger: logger('server') });
  } catch (err) {
    await streamer.close();
    throw err;
  }
  log.info({ url: server.url, netns: settings.netns, auth: settings.token !== null, tls: tls !== undefined }, 'listening');

  return await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'shutting down');
      void (async () => {
        let code = 0;
        // Each part is closed even when the other fails: the netlink sockets must not outlive
        // a server that could not close cleanly.
        for (const [part, close] of [['server', () => server.close()], ['streamer', () => streamer.close()]] as const) {
          try {
            await close();
          } catch (err) {
            log.error({ err: (err as Error).message, part }, 'shutdown failed');
            code = 1;
          }
        }
        log.info('stopped');
        flushLogs();
        process.off('SIGHUP', onHup);
        // A native handle that outlives close() must not keep the daemon up.
        setTimeout(() => process.exit(code), 3000).unref();
        resolve(code);
      })();
    };
    const onHup = (): void => reload(configPath, flags, settings, server, streamer);
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
    process.on('SIGHUP', onHup);
  });
}

function streamerOptions(s: ServeSettings): StreamerOptions {
  return {
    ...(s.netns !== null ? { netns: s.netns } : {}),
    ...(s.natPorts !== null ? { natPorts: s.natPorts } : {}),
    ...(s.nflogGroups.length > 0 ? { nflogGroups: s.nflogGroups } : {}),
    ...(s.thresholds !== null ? { thresholds: s.thresholds as Partial<Thresholds> } : {}),
    ...(s.natRules !== null ? { natRules: s.natRules } : {}),
    ...(s.rcvbufBytes !== null ? { rcvbufBytes: s.rcvbufBytes } : {}),
    ...(s.nflogRetryMs !== null ? { nflogRetryMs: s.nflogRetryMs } : {}),
  };
}

function readPem(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new UsageError(`${flag}: cannot read '${path}' (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/** SIGHUP: what can change live does (token, thresholds, NAT ports); the rest needs a restart. */
function reload(
  configPath: string | undefined,
  flags: RawSettings,
  current: ServeSettings,
  server: { setToken(t: string | null): void },
  streamer: Streamer,
): void {
  const log = logger('serve');
  if (!configPath) {
    log.info('SIGHUP: no --config file, nothing to reload');
    return;
  }
  let next: ServeSettings;
  try {
    next = resolveSettings(flags, readConfigFile(configPath));
  } catch (err) {
    log.error({ err: (err as Error).message }, 'SIGHUP: config not reloaded');
    return;
  }
  // Validate before touching anything: a bad file leaves the running settings as they were.
  const thresholds = (next.thresholds ?? {}) as Partial<Thresholds>;
  try {
    makeThresholds(thresholds);
  } catch (err) {
    log.error({ err: (err as Error).message }, 'SIGHUP: config not reloaded');
    return;
  }
  server.setToken(next.token);
  streamer.reconfigure({ thresholds, natPorts: next.natPorts, natRules: next.natRules });
  const restart = (['host', 'port', 'netns', 'tlsCert', 'tlsKey', 'logLevel', 'rcvbufBytes'] as const).filter((k) => next[k] !== current[k]);
  if (restart.length > 0) log.warn({ settings: restart }, 'SIGHUP: these settings need a restart');
  log.info({ auth: next.token !== null }, 'SIGHUP: config reloaded');
  Object.assign(current, { token: next.token, natPorts: next.natPorts, natRules: next.natRules, thresholds: next.thresholds });
}
