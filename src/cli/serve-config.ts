// `serve` settings: the config file (JSON or YAML, same fields as the flags) under the flags.
// Every bad value is a UsageError naming the flag (or the file's field) and the value.
import { readFileSync, statSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { UsageError } from '../errors.js';
import { isIP } from 'node:net';
import type { NatRuleConfig } from '../track/capacity.js';
import { netnsFlags, RCVBUF_MAX, RCVBUF_MIN, sizeFlag } from './args.js';
import { isLogLevel } from '../log.js';
import { isLoopback, normalizeOrigin, parseListen } from '../server/auth.js';
import { thresholds as checkThresholds } from '../alert/thresholds.js';

export interface ServeSettings {
  host: string;
  port: number;
  /** `--netns` values as given ([]: natwatch's own namespace; 'all': every one, followed). */
  netns: string[];
  /** `--netns-exclude` globs (with 'all'). */
  netnsExclude: string[];
  natPorts: [number, number] | null;
  nflogGroups: number[];
  token: string | null;
  /** Where the token came from: `--token` shows in the process list and is warned about. */
  tokenSource: 'flag' | 'file' | 'env' | 'config' | null;
  /** Non-loopback without TLS, accepted on purpose (warned at every start). */
  insecurePlaintext: boolean;
  allowOrigins: string[];
  allowHosts: string[];
  maxClients: number;
  tlsCert: string | null;
  tlsKey: string | null;
  logLevel: string;
  /** Passed to the streamer's alert rules as is. */
  thresholds: Record<string, unknown> | null;
  /** Per-rule NAT capacity overrides (config file only). */
  natRules: NatRuleConfig[] | null;
  /** Netlink receive buffer (SO_RCVBUFFORCE); null: the source's default (64 MiB). */
  rcvbufBytes: number | null;
  /** Retry interval for a ruleset NFLOG group another program holds; null: 30 s. */
  nflogRetryMs: number | null;
  /** Alertmanager base URLs to push alerts to (`--alertmanager`, config `alertmanagers`). */
  alertmanagers: string[];
  /** `instance` label of pushed alerts; null: the host name. */
  instance: string | null;
}

/** Raw values: flags as strings, file fields as parsed JSON/YAML. */
export type RawSettings = Partial<
  Record<
    | 'listen' | 'netns' | 'netnsExclude' | 'natPorts' | 'nflogGroups' | 'token' | 'tokenFile' | 'tlsCert' | 'tlsKey' | 'logLevel' | 'thresholds' | 'natRules' | 'rcvbuf'
    | 'allowOrigins' | 'allowHosts' | 'insecurePlaintext' | 'maxClients' | 'alertmanagers' | 'instance' | 'nflogRetry',
    unknown
  >
>;

const FILE_FIELDS: Record<string, keyof RawSettings> = {
  listen: 'listen',
  netns: 'netns',
  netnsExclude: 'netnsExclude',
  'netns-exclude': 'netnsExclude',
  natPorts: 'natPorts',
  'nat-ports': 'natPorts',
  nflogGroups: 'nflogGroups',
  nflogGroup: 'nflogGroups',
  'nflog-group': 'nflogGroups',
  token: 'token',
  tokenFile: 'tokenFile',
  'token-file': 'tokenFile',
  allowOrigins: 'allowOrigins',
  'allow-origin': 'allowOrigins',
  allowHosts: 'allowHosts',
  'allow-host': 'allowHosts',
  insecurePlaintext: 'insecurePlaintext',
  'insecure-plaintext': 'insecurePlaintext',
  maxClients: 'maxClients',
  'max-clients': 'maxClients',
  tlsCert: 'tlsCert',
  'tls-cert': 'tlsCert',
  tlsKey: 'tlsKey',
  'tls-key': 'tlsKey',
  logLevel: 'logLevel',
  'log-level': 'logLevel',
  thresholds: 'thresholds',
  natRules: 'natRules',
  'nat-rules': 'natRules',
  rcvbuf: 'rcvbuf',
  nflogRetry: 'nflogRetry',
  'nflog-retry': 'nflogRetry',
  alertmanagers: 'alertmanagers',
  alertmanager: 'alertmanagers',
  instance: 'instance',
};

const FLAG: Record<keyof RawSettings, string> = {
  listen: '--listen',
  netns: '--netns',
  netnsExclude: '--netns-exclude',
  natPorts: '--nat-ports',
  nflogGroups: '--nflog-group',
  token: '--token',
  tokenFile: '--token-file',
  allowOrigins: '--allow-origin',
  allowHosts: '--allow-host',
  insecurePlaintext: '--insecure-plaintext',
  maxClients: '--max-clients',
  tlsCert: '--tls-cert',
  tlsKey: '--tls-key',
  logLevel: '--log-level',
  thresholds: 'thresholds',
  natRules: 'natRules',
  rcvbuf: '--rcvbuf',
  nflogRetry: '--nflog-retry',
  alertmanagers: '--alertmanager',
  instance: '--instance',
};

export function readConfigFile(path: string): RawSettings {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`--config: cannot read '${path}' (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  let doc: unknown;
  try {
    doc = /\.json$/i.test(path) ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new UsageError(`--config: '${path}' is not valid ${/\.json$/i.test(path) ? 'JSON' : 'YAML'}: ${String((err as Error).message).split('\n')[0]}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new UsageError(`--config: '${path}' must hold a mapping of settings`);
  const out: RawSettings = {};
  for (const [k, v] of Object.entries(doc as Record<string, unknown>)) {
    // Own keys only: `constructor` or `__proto__` must not find Object.prototype's.
    const field = Object.hasOwn(FILE_FIELDS, k) ? FILE_FIELDS[k] : undefined;
    if (!field) throw new UsageError(`--config: unknown setting '${k.slice(0, 64)}' in '${path}'`);
    out[field] = v;
  }
  return out;
}

/**
 * Flags win over the environment (NATWATCH_TOKEN), which wins over the file; defaults fill the
 * rest. The exposure rules are checked here, so a SIGHUP reload that breaks them is refused.
 */
export function resolveSettings(flags: RawSettings, file: RawSettings = {}, env: NodeJS.ProcessEnv = process.env): ServeSettings {
  const pick = <K extends keyof RawSettings>(k: K): unknown => (flags[k] !== undefined ? flags[k] : file[k]);
  const listen = str('listen', pick('listen')) ?? '127.0.0.1:7600';
  const addr = parseListen(listen);
  if (!addr) throw new UsageError(`--listen: '${listen}' is not HOST:PORT`);
  const { token, tokenSource } = resolveToken(flags, file, env);
  const tlsCert = str('tlsCert', pick('tlsCert')) ?? null;
  const tlsKey = str('tlsKey', pick('tlsKey')) ?? null;
  if ((tlsCert === null) !== (tlsKey === null)) throw new UsageError(`${tlsCert === null ? '--tls-cert' : '--tls-key'}: required with ${tlsCert === null ? '--tls-key' : '--tls-cert'}`);
  const insecurePlaintext = bool('insecurePlaintext', pick('insecurePlaintext'));
  if (!isLoopback(addr.host)) {
    if (token === null) throw new UsageError(`--listen: refusing non-loopback address ${listen} without --token-file (or NATWATCH_TOKEN)`);
    if (tlsCert === null && !insecurePlaintext) {
      throw new UsageError(`--listen: refusing non-loopback address ${listen} without --tls-cert/--tls-key (the token would cross the network in clear; --insecure-plaintext to accept that)`);
    }
  }
  const logLevel = str('logLevel', pick('logLevel')) ?? (env.NATWATCH_LOG_LEVEL || undefined) ?? 'info';
  if (!isLogLevel(logLevel)) throw new UsageError(`--log-level: '${logLevel}' is not one of fatal, error, warn, info, debug, trace, silent`);
  const thresholds = pick('thresholds');
  if (thresholds !== undefined && (typeof thresholds !== 'object' || thresholds === null || Array.isArray(thresholds))) {
    throw new UsageError('thresholds: must be a mapping');
  }
  // Names and values checked now: a typo is a one-line error at start, or a refused reload.
  if (thresholds !== undefined) checkThresholds(thresholds as Record<string, unknown>);
  const ns = netnsFlags(strList('netns', pick('netns')), strList('netnsExclude', pick('netnsExclude')));
  return {
    host: addr.host,
    port: addr.port,
    netns: ns.netns,
    netnsExclude: ns.exclude,
    natPorts: portRange('--nat-ports', pick('natPorts')),
    nflogGroups: groups(pick('nflogGroups')),
    token,
    tokenSource,
    insecurePlaintext,
    allowOrigins: list('allowOrigins', pick('allowOrigins')).map(origin),
    allowHosts: list('allowHosts', pick('allowHosts')).map(hostName),
    maxClients: count('maxClients', pick('maxClients'), 1, 100_000) ?? 64,
    tlsCert,
    tlsKey,
    logLevel,
    thresholds: (thresholds as Record<string, unknown> | undefined) ?? null,
    natRules: natRules(pick('natRules')),
    rcvbufBytes: sizeFlag('rcvbuf', pick('rcvbuf'), RCVBUF_MIN, RCVBUF_MAX) ?? null,
    nflogRetryMs: seconds('--nflog-retry', pick('nflogRetry'), 1, 3600),
    alertmanagers: alertmanagerUrls(pick('alertmanagers')),
    instance: optionalName('instance', pick('instance')),
  };
}

/** Whole seconds in [lo, hi] (a flag's string or a file's number) → ms; null when unset. */
function seconds(name: string, v: unknown, lo: number, hi: number): number | null {
  if (v === undefined || v === null) return null;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < lo || n > hi) throw new UsageError(`${name}: '${String(v)}' is not a number of seconds ${lo}-${hi}`);
  return n * 1000;
}

/** --token / --token-file, then NATWATCH_TOKEN, then the file's token / tokenFile. */
function resolveToken(flags: RawSettings, file: RawSettings, env: NodeJS.ProcessEnv): Pick<ServeSettings, 'token' | 'tokenSource'> {
  if (flags.token !== undefined && flags.tokenFile !== undefined) throw new UsageError('--token: give either --token or --token-file, not both');
  if (flags.tokenFile !== undefined) return { token: readTokenFile(str('tokenFile', flags.tokenFile)!), tokenSource: 'file' };
  if (flags.token !== undefined) return { token: nonEmpty('--token', str('token', flags.token)!), tokenSource: 'flag' };
  const fromEnv = env.NATWATCH_TOKEN;
  if (fromEnv !== undefined && fromEnv !== '') return { token: nonEmpty('NATWATCH_TOKEN', fromEnv.trim()), tokenSource: 'env' };
  if (file.token !== undefined && file.tokenFile !== undefined) throw new UsageError('--config: give either token or tokenFile, not both');
  if (file.tokenFile !== undefined && file.tokenFile !== null) return { token: readTokenFile(str('tokenFile', file.tokenFile)!), tokenSource: 'file' };
  const t = str('token', file.token);
  return t === undefined ? { token: null, tokenSource: null } : { token: nonEmpty('token', t), tokenSource: 'config' };
}

function nonEmpty(what: string, t: string): string {
  if (t.length === 0) throw new UsageError(`${what}: empty`);
  return t;
}

/**
 * The token from a file that only its owner can read (anyone who can read it can use the
 * stream). First line, surrounding whitespace removed.
 */
export function readTokenFile(path: string): string {
  let mode: number;
  let text: string;
  try {
    mode = statSync(path).mode;
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`--token-file: cannot read '${path}' (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if ((mode & 0o044) !== 0) throw new UsageError(`--token-file: '${path}' is readable by group or others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`);
  return nonEmpty(`--token-file: '${path}'`, (text.split('\n')[0] ?? '').trim());
}

function bool(k: keyof RawSettings, v: unknown): boolean {
  if (v === undefined || v === null) return false;
  if (typeof v !== 'boolean') throw new UsageError(`${FLAG[k]}: expected true or false`);
  return v;
}

function list(k: keyof RawSettings, v: unknown): string[] {
  if (v === undefined || v === null) return [];
  const items = Array.isArray(v) ? v : [v];
  return items.map((x) => {
    if (typeof x !== 'string' || x === '') throw new UsageError(`${FLAG[k]}: expected a non-empty string, got ${JSON.stringify(x)?.slice(0, 64)}`);
    return x;
  });
}

function count(k: keyof RawSettings, v: unknown, min: number, max: number): number | undefined {
  if (v === undefined || v === null) return undefined;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`${FLAG[k]}: '${String(v).slice(0, 64)}' is not a number ${min}-${max}`);
  return n;
}

/** `scheme://host[:port]`, as a browser sends it in Origin. */
function origin(o: string): string {
  let u: URL;
  try {
    u = new URL(o);
  } catch {
    throw new UsageError(`--allow-origin: '${o}' is not an origin such as https://ops.example:8443`);
  }
  if (!/^https?:$/.test(u.protocol) || u.origin === 'null' || normalizeOrigin(o) !== u.origin.toLowerCase()) {
    throw new UsageError(`--allow-origin: '${o}' is not an origin such as https://ops.example:8443 (scheme, host and port only)`);
  }
  return u.origin;
}

function hostName(h: string): string {
  if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/i.test(h) || h.length > 253) {
    throw new UsageError(`--allow-host: '${h}' is not a host name (no port, no scheme)`);
  }
  return h.toLowerCase();
}

function str(k: keyof RawSettings, v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number' && k === 'token') return String(v);
  if (typeof v !== 'string') throw new UsageError(`${FLAG[k]}: expected a string`);
  return v;
}

/** A flag given several times, or a file field holding one string or a list of them. */
function strList(k: keyof RawSettings, v: unknown): string[] {
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  return list.map((x) => {
    if (typeof x !== 'string') throw new UsageError(`${FLAG[k]}: expected a string or a list of strings`);
    return x;
  });
}

function portRange(name: string, v: unknown): [number, number] | null {
  if (v === undefined || v === null) return null;
  let lo: number;
  let hi: number;
  if (Array.isArray(v) && v.length === 2) [lo, hi] = v.map(Number) as [number, number];
  else {
    const m = /^(\d{1,5})-(\d{1,5})$/.exec(String(v));
    if (!m) throw new UsageError(`${name}: '${String(v)}' is not a port range A-B`);
    lo = Number(m[1]);
    hi = Number(m[2]);
  }
  if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 1 || hi > 65535 || lo > hi) {
    throw new UsageError(`${name}: '${Array.isArray(v) ? v.join('-') : String(v)}' is not a port range within 1-65535`);
  }
  return [lo, hi];
}

function groups(v: unknown): number[] {
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  return list.map((g) => {
    const s = String(g);
    if (!/^\d{1,5}$/.test(s) || Number(s) > 65535) throw new UsageError(`--nflog-group: '${s}' is not a group number 0-65535`);
    return Number(s);
  });
}

/**
 * Checked here, once, so a malformed entry is a one-line error at start or a refused SIGHUP
 * reload, rather than a NaN capacity (or a throw) every second in the capacity resolver.
 */
function natRules(v: unknown): NatRuleConfig[] | null {
  if (v === undefined || v === null) return null;
  if (!Array.isArray(v)) throw new UsageError('natRules: must be a list');
  return v.map((r: unknown, i) => {
    const at = `natRules[${i}]`;
    if (typeof r !== 'object' || r === null || Array.isArray(r)) throw new UsageError(`${at}: must be a mapping with 'ports'`);
    const { natIp, dstIp, dstPort, proto, ports, ...rest } = r as Record<string, unknown>;
    const unknown = Object.keys(rest)[0];
    if (unknown !== undefined) throw new UsageError(`${at}: unknown field '${unknown}' (natIp, dstIp, dstPort, proto, ports)`);
    const rule: NatRuleConfig = { ports: portRange(`${at}.ports`, ports) ?? missing(`${at}.ports`) };
    for (const [k, ip] of [['natIp', natIp], ['dstIp', dstIp]] as const) {
      if (ip === undefined) continue;
      if (typeof ip !== 'string' || isIP(ip) === 0) throw new UsageError(`${at}.${k}: '${String(ip)}' is not an IP address`);
      rule[k] = ip;
    }
    if (dstPort !== undefined) {
      if (!Number.isInteger(dstPort) || (dstPort as number) < 1 || (dstPort as number) > 65535) throw new UsageError(`${at}.dstPort: '${String(dstPort)}' is not a port 1-65535`);
      rule.dstPort = dstPort as number;
    }
    if (proto !== undefined) {
      if (typeof proto !== 'string' || proto === '') throw new UsageError(`${at}.proto: expected a protocol name such as tcp or udp`);
      rule.proto = proto;
    }
    return rule;
  });
}

function missing(what: string): never {
  throw new UsageError(`${what}: required (a port range A-B)`);
}

/** `--alertmanager URL` (repeatable) / `alertmanagers: [URL, ...]`: http(s) base URLs. */
function alertmanagerUrls(v: unknown): string[] {
  if (v === undefined || v === null) return [];
  return (Array.isArray(v) ? v : [v]).map((u) => {
    const s = String(u);
    let url: URL | null = null;
    try {
      url = new URL(s);
    } catch {
      // reported below
    }
    if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      throw new UsageError(`--alertmanager: '${s}' is not an http:// or https:// URL`);
    }
    return s;
  });
}

/** An optional non-blank string setting (`--instance`). */
function optionalName(k: keyof RawSettings, v: unknown): string | null {
  const s = str(k, v);
  if (s === undefined) return null;
  if (s.trim() === '') throw new UsageError(`${FLAG[k]}: empty`);
  return s;
}
