// `serve` settings: the config file (JSON or YAML, same fields as the flags) under the flags.
// Every bad value is a UsageError naming the flag (or the file's field) and the value.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { UsageError } from '../errors.js';
import { isIP } from 'node:net';
import type { NatRuleConfig } from '../track/capacity.js';
import { netnsPath, RCVBUF_MAX, RCVBUF_MIN, sizeFlag } from './args.js';
import { isLogLevel } from '../log.js';
import { isLoopback, parseListen } from '../server/auth.js';

export interface ServeSettings {
  host: string;
  port: number;
  netns: string | null;
  natPorts: [number, number] | null;
  nflogGroups: number[];
  token: string | null;
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
}

/** Raw values: flags as strings, file fields as parsed JSON/YAML. */
export type RawSettings = Partial<Record<'listen' | 'netns' | 'natPorts' | 'nflogGroups' | 'token' | 'tlsCert' | 'tlsKey' | 'logLevel' | 'thresholds' | 'natRules' | 'rcvbuf' | 'nflogRetry', unknown>>;

const FILE_FIELDS: Record<string, keyof RawSettings> = {
  listen: 'listen',
  netns: 'netns',
  natPorts: 'natPorts',
  'nat-ports': 'natPorts',
  nflogGroups: 'nflogGroups',
  nflogGroup: 'nflogGroups',
  'nflog-group': 'nflogGroups',
  token: 'token',
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
};

const FLAG: Record<keyof RawSettings, string> = {
  listen: '--listen',
  netns: '--netns',
  natPorts: '--nat-ports',
  nflogGroups: '--nflog-group',
  token: '--token',
  tlsCert: '--tls-cert',
  tlsKey: '--tls-key',
  logLevel: '--log-level',
  thresholds: 'thresholds',
  natRules: 'natRules',
  rcvbuf: '--rcvbuf',
  nflogRetry: '--nflog-retry',
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
    const field = FILE_FIELDS[k];
    if (!field) throw new UsageError(`--config: unknown setting '${k}' in '${path}'`);
    out[field] = v;
  }
  return out;
}

/** Flags win over the file; defaults fill the rest. */
export function resolveSettings(flags: RawSettings, file: RawSettings = {}): ServeSettings {
  const pick = <K extends keyof RawSettings>(k: K): unknown => (flags[k] !== undefined ? flags[k] : file[k]);
  const listen = str('listen', pick('listen')) ?? '127.0.0.1:7600';
  const addr = parseListen(listen);
  if (!addr) throw new UsageError(`--listen: '${listen}' is not HOST:PORT`);
  const token = str('token', pick('token')) ?? null;
  if (token !== null && token.length < 1) throw new UsageError('--token: empty');
  if (!isLoopback(addr.host) && token === null) {
    throw new UsageError(`--listen: refusing non-loopback address ${listen} without --token`);
  }
  const tlsCert = str('tlsCert', pick('tlsCert')) ?? null;
  const tlsKey = str('tlsKey', pick('tlsKey')) ?? null;
  if ((tlsCert === null) !== (tlsKey === null)) throw new UsageError(`${tlsCert === null ? '--tls-cert' : '--tls-key'}: required with ${tlsCert === null ? '--tls-key' : '--tls-cert'}`);
  const logLevel = str('logLevel', pick('logLevel')) ?? 'info';
  if (!isLogLevel(logLevel)) throw new UsageError(`--log-level: '${logLevel}' is not one of fatal, error, warn, info, debug, trace, silent`);
  const thresholds = pick('thresholds');
  if (thresholds !== undefined && (typeof thresholds !== 'object' || thresholds === null || Array.isArray(thresholds))) {
    throw new UsageError('thresholds: must be a mapping');
  }
  const netns = str('netns', pick('netns'));
  return {
    host: addr.host,
    port: addr.port,
    netns: netnsPath(netns),
    natPorts: portRange('--nat-ports', pick('natPorts')),
    nflogGroups: groups(pick('nflogGroups')),
    token,
    tlsCert,
    tlsKey,
    logLevel,
    thresholds: (thresholds as Record<string, unknown> | undefined) ?? null,
    natRules: natRules(pick('natRules')),
    rcvbufBytes: sizeFlag('rcvbuf', pick('rcvbuf'), RCVBUF_MIN, RCVBUF_MAX) ?? null,
    nflogRetryMs: seconds('--nflog-retry', pick('nflogRetry'), 1, 3600),
  };
}

/** Whole seconds in [lo, hi] (a flag's string or a file's number) → ms; null when unset. */
function seconds(name: string, v: unknown, lo: number, hi: number): number | null {
  if (v === undefined || v === null) return null;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : NaN;
  if (!Number.isInteger(n) || n < lo || n > hi) throw new UsageError(`${name}: '${String(v)}' is not a number of seconds ${lo}-${hi}`);
  return n * 1000;
}

function str(k: keyof RawSettings, v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number' && k === 'token') return String(v);
  if (typeof v !== 'string') throw new UsageError(`${FLAG[k]}: expected a string`);
  return v;
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
