// `natwatch serve`: the daemon. Streamer (netlink source → tracker → alerts) plus the WebSocket
// stream and HTTP endpoints on one port. SIGTERM/SIGINT: clients closed 1001, logs flushed,
// exit 0. SIGHUP: the config file and the token file are read again (token, thresholds, NAT
// ports and rules); a reload that would leave a non-loopback listener without a token is
// refused. Who can reach what, and how to open it up: docs/security.md.
import { readFileSync } from 'node:fs';
import { parse } from './args.js';
import { UsageError } from '../errors.js';
import { checkNetns, netnsPath } from '../netns.js';
import { flushLogs, logger, setupLogging, type Logger } from '../log.js';
import { readConfigFile, resolveSettings, type RawSettings, type ServeSettings } from './serve-config.js';
import { startServer, type StandaloneServer } from '../server/index.js';
import { isLoopback } from '../server/auth.js';
import { untilSignal } from './until-signal.js';
import { loadStreamerFactory } from './streamer-loader.js';
import type { Streamer, StreamerOptions } from '../streamer.js';
import type { Thresholds } from '../alert/thresholds.js';
import { AlertmanagerPusher } from '../alertmanager/pusher.js';
import type { Registry } from 'prom-client';

const HELP = `usage: natwatch serve [options]

  --listen HOST:PORT     where to listen (default 127.0.0.1:7600); a non-loopback address needs
                         a token and TLS
  --netns NAME|PATH|all  network namespace to watch (NAME = /var/run/netns/NAME); repeatable;
                         'all' = natwatch's own plus every one under /var/run/netns, followed
  --netns-exclude GLOB   with --netns all: leave out names matching GLOB (repeatable)
  --nat-ports A-B        NAT source port range, when the ruleset does not say it
  --nflog-group N        NFLOG group to bind (repeatable; default: groups named by the ruleset)
  --nflog-retry S        retry a ruleset group another program holds every S seconds (default 30)
  --token-file F         require 'Authorization: Bearer T' (or '?token=T') with T read from F,
                         which only its owner may read (not for /healthz); re-read on SIGHUP
  --token T              the same with T on the command line (visible in the process list)
  --tls-cert F --tls-key F   serve wss:// and https://
  --insecure-plaintext   allow a non-loopback listener without TLS (warned at every start)
  --allow-origin ORIGIN  browser origin allowed to open the stream (repeatable; none by default)
  --allow-host NAME      Host name accepted without a token besides 127.0.0.1, ::1, localhost
                         (repeatable)
  --max-clients N        stream clients at most (default 64; 16 per remote address)
  --config FILE          JSON or YAML with the same fields (flags win); re-read on SIGHUP
  --log-level LEVEL      fatal|error|warn|info|debug|trace|silent (default info)
  --rcvbuf SIZE          netlink receive buffer, e.g. 64M (default); small values lose events
  --alertmanager URL     push alerts to URL/api/v2/alerts (repeatable, e.g. an HA pair)
  --instance NAME        'instance' label of pushed alerts (default: the host name)

endpoints: ws(s)://HOST:PORT/v1/stream, /healthz (503 until ready), /metrics, /v1/alerts, /v1/top
signals: SIGTERM/SIGINT stop (clients closed 1001); SIGHUP re-reads --config, --token-file and the ruleset
exit: 0 stopped, 1 runtime failure, 2 usage error, 70 internal error (logged as one fatal line)

environment:
  NATWATCH_TOKEN         the token, when neither --token nor --token-file is given
  NATWATCH_LOG_LEVEL     log level when --log-level is not given

example:
  natwatch serve --netns gw --listen 0.0.0.0:7600 --token-file /etc/natwatch/token \\
    --tls-cert /etc/natwatch/cert.pem --tls-key /etc/natwatch/key.pem`;

/** EX_SOFTWARE (sysexits.h): an internal error, distinct from a runtime failure's 1. */
export const EXIT_INTERNAL = 70;

export async function run(argv: string[]): Promise<number> {
  const { values } = parse({
    args: argv,
    options: {
      listen: { type: 'string' },
      netns: { type: 'string', multiple: true },
      'netns-exclude': { type: 'string', multiple: true },
      'nat-ports': { type: 'string' },
      'nflog-group': { type: 'string', multiple: true },
      token: { type: 'string' },
      'token-file': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'insecure-plaintext': { type: 'boolean' },
      'allow-origin': { type: 'string', multiple: true },
      'allow-host': { type: 'string', multiple: true },
      'max-clients': { type: 'string' },
      config: { type: 'string' },
      'log-level': { type: 'string' },
      rcvbuf: { type: 'string' },
      'nflog-retry': { type: 'string' },
      alertmanager: { type: 'string', multiple: true },
      instance: { type: 'string' },
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
    netnsExclude: values['netns-exclude'],
    natPorts: values['nat-ports'],
    nflogGroups: values['nflog-group'],
    token: values.token,
    tokenFile: values['token-file'],
    tlsCert: values['tls-cert'],
    tlsKey: values['tls-key'],
    insecurePlaintext: values['insecure-plaintext'],
    allowOrigins: values['allow-origin'],
    allowHosts: values['allow-host'],
    maxClients: values['max-clients'],
    logLevel: values['log-level'],
    nflogRetry: values['nflog-retry'],
    rcvbuf: values.rcvbuf,
    alertmanagers: values.alertmanager,
    instance: values.instance,
  };
  const configPath = values.config;
  const settings = resolveSettings(flags, configPath ? readConfigFile(configPath) : {});
  const tls = settings.tlsCert ? { cert: readPem('--tls-cert', settings.tlsCert), key: readPem('--tls-key', settings.tlsKey!) } : undefined;
  for (const v of settings.netns) if (v !== 'all') checkNetns(netnsPath(v)!);

  setupLogging({ level: settings.logLevel });
  const log = logger('serve');
  installFatalHandlers(log);
  warnExposure(log, settings);
  const createStreamer = await loadStreamerFactory();
  const streamer = createStreamer(streamerOptions(settings));
  // Errors and warnings raised while starting are logged only if the start succeeds: when it
  // fails, its own one-line cause says it all (e.g. missing CAP_NET_ADMIN also fails the
  // ruleset read, and leaves the legacy tables unchecked).
  const say = { error: (err: Error) => log.error({ err: err.message }, 'streamer error'), warning: (message: string) => log.warn(message) };
  let early: Array<() => void> | null = [];
  streamer.on('error', (err) => (early ? early.push(() => say.error(err)) : say.error(err)));
  streamer.on('warning', (message) => (early ? early.push(() => say.warning(message)) : say.warning(message)));
  streamer.on('namespace', (n) => log.info({ netns: n.netns }, n.state === 'watching' ? 'watching namespace' : 'namespace gone'));
  await streamer.start();
  for (const said of early) said();
  early = null;

  let server: StandaloneServer;
  try {
    server = await startServer(streamer, {
      host: settings.host,
      port: settings.port,
      token: settings.token,
      tls,
      allowOrigins: settings.allowOrigins,
      allowHosts: settings.allowHosts,
      maxClients: settings.maxClients,
      logger: logger('server'),
    });
  } catch (err) {
    await streamer.close();
    throw err;
  }
  log.info({ url: server.url, netns: settings.netns, auth: settings.token !== null, tls: tls !== undefined }, 'listening');
  const pusher = startPusher(settings, streamer, server.registry);

  const onHup = (): void => {
    reload(configPath, flags, settings, server, streamer);
    // Also the rulesets: iptables-legacy tables announce no change (otherwise re-read each minute).
    streamer.refreshRuleset().catch((err: Error) => log.warn({ err: err.message }, 'SIGHUP: ruleset not re-read'));
  };
  process.on('SIGHUP', onHup);
  return untilSignal(
    async () => {
      process.off('SIGHUP', onHup);
      let code = 0;
      // Each part is closed even when the other fails: the netlink sockets must not outlive
      // a server that could not close cleanly. The pusher first: it tries to deliver what is queued.
      const parts = [['alertmanager', async () => pusher?.close()], ['server', () => server.close()], ['streamer', () => streamer.close()]] as const;
      for (const [part, close] of parts) {
        try {
          await close();
        } catch (err) {
          log.error({ err: (err as Error).message, part }, 'shutdown failed');
          code = 1;
        }
      }
      log.info('stopped');
      flushLogs();
      // A native handle that outlives close() must not keep the daemon up.
      setTimeout(() => process.exit(code), 3000).unref();
      return code;
    },
    undefined,
    { onSignal: (signal) => log.info({ signal }, 'shutting down') },
  );
}

/** Said at every start: what makes this listener reachable, or readable, by others. */
function warnExposure(log: Logger, s: ServeSettings): void {
  if (s.tokenSource === 'flag') log.warn('--token is visible to every local user in the process list (ps, /proc/PID/cmdline): use --token-file or NATWATCH_TOKEN');
  if (!isLoopback(s.host) && s.tlsCert === null) {
    log.warn({ listen: `${s.host}:${s.port}` }, '--insecure-plaintext: the token and every alert cross the network unencrypted');
  }
}

/**
 * Last line of defence: an exception or rejection nothing caught is one fatal log line and exit
 * 70 (EX_SOFTWARE), never a silent exit or a half-working daemon.
 */
export function installFatalHandlers(log: Logger, exit: (code: number) => void = (c) => process.exit(c)): void {
  const die = (kind: string) => (err: unknown): void => {
    const e = err instanceof Error ? err : new Error(String(err));
    try {
      log.fatal({ err: e.message, stack: e.stack?.split('\n').slice(1, 4).map((l) => l.trim()).join(' | ') }, `${kind}: exiting`);
      flushLogs();
    } finally {
      exit(EXIT_INTERNAL);
    }
  };
  process.on('uncaughtException', die('uncaught exception'));
  process.on('unhandledRejection', die('unhandled rejection'));
}

function streamerOptions(s: ServeSettings): StreamerOptions {
  return {
    ...(s.netns.length > 0 ? { netns: s.netns } : {}),
    ...(s.netnsExclude.length > 0 ? { netnsExclude: s.netnsExclude } : {}),
    ...(s.natPorts !== null ? { natPorts: s.natPorts } : {}),
    ...(s.nflogGroups.length > 0 ? { nflogGroups: s.nflogGroups } : {}),
    ...(s.thresholds !== null ? { thresholds: s.thresholds as Partial<Thresholds> } : {}),
    ...(s.natRules !== null ? { natRules: s.natRules } : {}),
    ...(s.rcvbufBytes !== null ? { rcvbufBytes: s.rcvbufBytes } : {}),
    ...(s.nflogRetryMs !== null ? { nflogRetryMs: s.nflogRetryMs } : {}),
  };
}

/** `--alertmanager`: pushes this streamer's alerts; its counters go to the server's /metrics. */
function startPusher(s: ServeSettings, streamer: Streamer, registry: Registry): AlertmanagerPusher | null {
  if (s.alertmanagers.length === 0) return null;
  const pusher = new AlertmanagerPusher({ urls: s.alertmanagers, ...(s.instance !== null ? { instance: s.instance } : {}) });
  pusher.registerMetrics(registry);
  pusher.attach(streamer);
  return pusher;
}

function readPem(flag: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new UsageError(`${flag}: cannot read '${path}' (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
}

/**
 * SIGHUP: what can change live does (token, thresholds, NAT ports); the rest needs a restart.
 * A reload that would leave a non-loopback listener without a token is refused as a whole.
 */
export function reload(
  configPath: string | undefined,
  flags: RawSettings,
  current: ServeSettings,
  server: { setToken(t: string | null): void },
  streamer: Pick<Streamer, 'reconfigure'>,
): boolean {
  const log = logger('serve');
  if (!configPath && flags.tokenFile === undefined) {
    log.info('SIGHUP: no --config or --token-file, nothing to reload');
    return false;
  }
  let next: ServeSettings;
  try {
    next = resolveSettings(flags, configPath ? readConfigFile(configPath) : {});
  } catch (err) {
    log.error({ err: (err as Error).message }, 'SIGHUP: config not reloaded, the running settings are kept');
    return false;
  }
  // The listener keeps its address until a restart: judge the new token against it.
  if (!isLoopback(current.host) && next.token === null) {
    log.error({ listen: `${current.host}:${current.port}` }, 'SIGHUP: refused, the reload would leave a non-loopback listener without a token; the running settings are kept');
    return false;
  }
  const thresholds = (next.thresholds ?? {}) as Partial<Thresholds>;
  if (next.token !== current.token) server.setToken(next.token);
  streamer.reconfigure({ thresholds, natPorts: next.natPorts, natRules: next.natRules });
  const restart: string[] = (['host', 'port', 'netns', 'netnsExclude', 'tlsCert', 'tlsKey', 'logLevel', 'rcvbufBytes', 'maxClients', 'insecurePlaintext', 'instance'] as const).filter((k) => JSON.stringify(next[k]) !== JSON.stringify(current[k]));
  if (String(next.allowOrigins) !== String(current.allowOrigins)) restart.push('allowOrigins');
  if (String(next.allowHosts) !== String(current.allowHosts)) restart.push('allowHosts');
  if (next.alertmanagers.join(' ') !== current.alertmanagers.join(' ')) restart.push('alertmanagers');
  if (restart.length > 0) log.warn({ settings: restart }, 'SIGHUP: these settings need a restart');
  log.info({ auth: next.token !== null, tokenChanged: next.token !== current.token }, 'SIGHUP: config reloaded');
  Object.assign(current, { token: next.token, tokenSource: next.tokenSource, natPorts: next.natPorts, natRules: next.natRules, thresholds: next.thresholds });
  return true;
}
