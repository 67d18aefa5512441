// serve's exposure rules and token sources, as resolveSettings and the SIGHUP reload apply them.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readConfigFile, resolveSettings, type RawSettings } from '../../src/cli/serve-config.js';
import { reload } from '../../src/cli/serve.js';
import { thresholds } from '../../src/alert/thresholds.js';

let dir: string;
beforeAll(() => {
  process.env.NATWATCH_LOG_LEVEL ??= 'silent';
  dir = mkdtempSync(join(tmpdir(), 'nwc-serve-cfg-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const NOENV = {};
const file = (name: string, text: string, mode = 0o600): string => {
  const p = join(dir, name);
  writeFileSync(p, text);
  chmodSync(p, mode);
  return p;
};

describe('non-loopback listeners', () => {
  it('need a token and TLS, unless --insecure-plaintext waives TLS', () => {
    expect(() => resolveSettings({ listen: '0.0.0.0:7600' }, {}, NOENV)).toThrow(/^--listen: refusing non-loopback address 0\.0\.0\.0:7600 without --token-file/);
    expect(() => resolveSettings({ listen: '0.0.0.0:7600', token: 't' }, {}, NOENV)).toThrow(/without --tls-cert\/--tls-key .*--insecure-plaintext/);
    const s = resolveSettings({ listen: '0.0.0.0:7600', token: 't', insecurePlaintext: true }, {}, NOENV);
    expect(s).toMatchObject({ host: '0.0.0.0', token: 't', tokenSource: 'flag', insecurePlaintext: true });
    expect(resolveSettings({ listen: '[::]:7600', token: 't', tlsCert: '/c', tlsKey: '/k' }, {}, NOENV).tlsCert).toBe('/c');
    // --insecure-plaintext never waives the token.
    expect(() => resolveSettings({ listen: '0.0.0.0:7600', insecurePlaintext: true }, {}, NOENV)).toThrow(/without --token-file/);
    // Loopback needs neither.
    expect(resolveSettings({ listen: '127.0.0.1:7600' }, {}, NOENV).token).toBeNull();
  });
});

describe('token sources', () => {
  it('--token-file: read, trimmed, refused when group- or world-readable', () => {
    const ok = file('tok', 'f1le-token\n');
    expect(resolveSettings({ tokenFile: ok }, {}, NOENV)).toMatchObject({ token: 'f1le-token', tokenSource: 'file' });
    for (const mode of [0o640, 0o604, 0o644]) {
      const bad = file(`tok-${mode.toString(8)}`, 'x', mode);
      expect(() => resolveSettings({ tokenFile: bad }, {}, NOENV)).toThrow(new RegExp(`^--token-file: '${bad}' is readable by group or others \\(mode ${mode.toString(8)}\\); chmod 600 it$`));
    }
    expect(() => resolveSettings({ tokenFile: file('empty', '\n') }, {}, NOENV)).toThrow(/empty/);
    expect(() => resolveSettings({ tokenFile: join(dir, 'missing') }, {}, NOENV)).toThrow(/^--token-file: cannot read .* \(ENOENT\)$/);
    expect(() => resolveSettings({ tokenFile: ok, token: 'x' }, {}, NOENV)).toThrow(/either --token or --token-file/);
  });

  it('flags, then NATWATCH_TOKEN, then the config file', () => {
    const env = { NATWATCH_TOKEN: 'env-token' };
    expect(resolveSettings({}, {}, env)).toMatchObject({ token: 'env-token', tokenSource: 'env' });
    expect(resolveSettings({ token: 'flag' }, {}, env)).toMatchObject({ token: 'flag', tokenSource: 'flag' });
    expect(resolveSettings({}, { token: 'cfg' }, env)).toMatchObject({ token: 'env-token' });
    expect(resolveSettings({}, { token: 'cfg' }, NOENV)).toMatchObject({ token: 'cfg', tokenSource: 'config' });
    expect(resolveSettings({}, { tokenFile: file('t2', 'from-cfg-file') }, NOENV)).toMatchObject({ token: 'from-cfg-file', tokenSource: 'file' });
    // The environment's token makes a non-loopback listener acceptable too.
    expect(resolveSettings({ listen: '0.0.0.0:1', insecurePlaintext: true }, {}, env).token).toBe('env-token');
  });
});

describe('browser and client limits', () => {
  it('--allow-origin, --allow-host and --max-clients are validated', () => {
    const s = resolveSettings({ allowOrigins: ['https://Ops.example:8443', 'http://localhost:3000'], allowHosts: ['NatWatch.internal'], maxClients: '10' }, {}, NOENV);
    expect(s).toMatchObject({ allowOrigins: ['https://ops.example:8443', 'http://localhost:3000'], allowHosts: ['natwatch.internal'], maxClients: 10 });
    expect(resolveSettings({}, {}, NOENV).maxClients).toBe(64);
    expect(() => resolveSettings({ allowOrigins: ['ops.example'] }, {}, NOENV)).toThrow(/^--allow-origin: 'ops.example' is not an origin/);
    expect(() => resolveSettings({ allowOrigins: ['https://ops.example/path'] }, {}, NOENV)).toThrow(/scheme, host and port only/);
    expect(() => resolveSettings({ allowHosts: ['host:80'] }, {}, NOENV)).toThrow(/^--allow-host: 'host:80' is not a host name/);
    expect(() => resolveSettings({ maxClients: '0' }, {}, NOENV)).toThrow(/^--max-clients: '0' is not a number 1-100000$/);
    expect(() => resolveSettings({}, { maxClients: 'many' }, NOENV)).toThrow(/--max-clients/);
    expect(resolveSettings({}, { allowOrigins: 'https://a.example', allowHosts: ['b.example'] }, NOENV)).toMatchObject({ allowOrigins: ['https://a.example'], allowHosts: ['b.example'] });
  });
});

describe('config keys and thresholds', () => {
  it('config keys are own properties only', () => {
    for (const k of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      const p = file(`k-${k}.json`, `{"${k}": 1}`);
      expect(() => readConfigFile(p)).toThrow(new RegExp(`unknown setting '${k}'`));
    }
    const y = file('k.yaml', 'constructor: 1\n');
    expect(() => readConfigFile(y)).toThrow(/unknown setting 'constructor'/);
  });

  it('unknown threshold names are refused with the valid ones listed', () => {
    expect(() => resolveSettings({}, { thresholds: { portWarnign: 0.5 } }, NOENV)).toThrow(/^threshold 'portWarnign' is unknown; valid: portWarning, portCritical, .*lossQuietSeconds.*nflogMaxPerRule$/);
    expect(() => resolveSettings({}, { thresholds: JSON.parse('{"constructor": 1}') }, NOENV)).toThrow(/threshold 'constructor' is unknown/);
    expect(() => resolveSettings({}, { thresholds: { lossQuietSeconds: 'x' } }, NOENV)).toThrow(/threshold lossQuietSeconds: "x" is not a non-negative number/);
    expect(() => thresholds({ toString: 1 } as never)).toThrow(/threshold 'toString' is unknown/);
    expect(resolveSettings({}, { thresholds: { lossQuietSeconds: 3 } }, NOENV).thresholds).toEqual({ lossQuietSeconds: 3 });
  });
});

describe('SIGHUP reload', () => {
  const fakes = () => {
    const tokens: Array<string | null> = [];
    const reconfigured: unknown[] = [];
    return { tokens, reconfigured, server: { setToken: (t: string | null) => void tokens.push(t) }, streamer: { reconfigure: (o: unknown) => void reconfigured.push(o) } };
  };

  it('can never leave a non-loopback listener without a token: refused, old settings kept', () => {
    const cfg = file('hup.yaml', 'listen: 0.0.0.0:7600\ntoken: first\ninsecurePlaintext: true\n');
    const flags: RawSettings = {};
    const current = resolveSettings(flags, readConfigFile(cfg), NOENV);
    const f = fakes();
    // The token removed (listen unchanged): the file is invalid as a whole.
    writeFileSync(cfg, 'listen: 0.0.0.0:7600\ninsecurePlaintext: true\n');
    expect(reload(cfg, flags, current, f.server, f.streamer)).toBe(false);
    // The token removed and listen moved to loopback: valid for a new start, but this
    // listener stays on 0.0.0.0 until a restart.
    writeFileSync(cfg, 'listen: 127.0.0.1:7600\n');
    expect(reload(cfg, flags, current, f.server, f.streamer)).toBe(false);
    expect(f.tokens).toEqual([]);
    expect(f.reconfigured).toEqual([]);
    expect(current.token).toBe('first');
    // A new token is applied.
    writeFileSync(cfg, 'listen: 0.0.0.0:7600\ntoken: second\ninsecurePlaintext: true\nthresholds: {lossQuietSeconds: 4}\n');
    expect(reload(cfg, flags, current, f.server, f.streamer)).toBe(true);
    expect(f.tokens).toEqual(['second']);
    expect(f.reconfigured).toEqual([{ thresholds: { lossQuietSeconds: 4 }, natPorts: null, natRules: null }]);
    expect(current.token).toBe('second');
  });

  it('re-reads --token-file (rotation) even without --config', () => {
    const tf = file('rot', 'one');
    const flags: RawSettings = { tokenFile: tf };
    const current = resolveSettings(flags, {}, NOENV);
    const f = fakes();
    writeFileSync(tf, 'two');
    expect(reload(undefined, flags, current, f.server, f.streamer)).toBe(true);
    expect(f.tokens).toEqual(['two']);
    // Unchanged token: clients are left alone (no setToken).
    expect(reload(undefined, flags, current, f.server, f.streamer)).toBe(true);
    expect(f.tokens).toEqual(['two']);
    chmodSync(tf, 0o644);
    expect(reload(undefined, flags, current, f.server, f.streamer)).toBe(false);
    expect(current.token).toBe('two');
  });
});
