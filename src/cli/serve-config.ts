// `serve` settings: the config file (JSON or YAML, same fields as the flags) under the flags.
// Every bad value is a UsageError naming the flag (or the file's field) and the value.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { UsageError } from '../errors.js';
import { RCVBUF_MAX, RCVBUF_MIN, sizeFlag } from './args.js';
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
  /** Per-rule NAT capacity overrides (config file only), passed to the streamer as is. */
  natRules: unknown[] | null;
  /** Netlink receive buffer (SO_RCVBUFFORCE); null: the source's default (64 MiB). */
  rcvbufBytes: number | null;
}

/** Raw values: flags as strings, file fields as parsed JSON/YAML. */
export type RawSettings = Partial<Record<'listen' | 'netns' | 'natPorts' | 'nflogGroups' | 'token' | 'tlsCert' | 'tlsKey' | 'logLevel' | 'thresholds' | 'natRules' | 'rcvbuf', unknown>>;

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
  const natRules = pick('natRules');
  if (natRules !== undefined && natRules !== null && !Array.isArray(natRules)) throw new UsageError('natRules: must be a list');
  const netns = str('netns', pick('netns'));
  return {
    host: addr.host,
    port: addr.port,
    netns: netns === undefined || netns === '' ? null : netns.includes('/') ? netns : `/var/run/netns/${netns}`,
    natPorts: portRange(pick('natPorts')),
    nflogGroups: groups(pick('nflogGroups')),
    token,
    tlsCert,
    tlsKey,
    logLevel,
    thresholds: (thresholds as Record<string, unknown> | undefined) ?? null,
    natRules: (natRules as unknown[] | undefined) ?? null,
    rcvbufBytes: sizeFlag('rcvbuf', pick('rcvbuf'), RCVBUF_MIN, RCVBUF_MAX) ?? null,
  };
}

function str(k: keyof RawSettings, v: unknown): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'number' && k === 'token') return String(v);
  if (typeof v !== 'string') throw new UsageError(`${FLAG[k]}: expected a string`);
  return v;
}

function portRange(v: unknown): [number, number] | null {
  if (v === undefined || v === null) return null;
  let lo: number;
  let hi: number;
  if (Array.isArray(v) && v.length === 2) [lo, hi] = v.map(Number) as [number, number];
  else {
    const m = /^(\d{1,5})-(\d{1,5})$/.exec(String(v));
    if (!m) throw new UsageError(`--nat-ports: '${String(v)}' is not a port range A-B`);
    lo = Number(m[1]);
    hi = Number(m[2]);
  }
  if (!Number.isInteger(lo) || !Number.isInteger(hi) || lo < 1 || hi > 65535 || lo > hi) {
    throw new UsageError(`--nat-ports: '${Array.isArray(v) ? v.join('-') : String(v)}' is not a port range within 1-65535`);
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
