// The README's complete configuration file is a real one: serve accepts every line of it, and
// the thresholds it lists as the defaults are the defaults.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_THRESHOLDS } from '../../src/alert/thresholds.js';
import { readConfigFile, resolveSettings } from '../../src/cli/serve-config.js';

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const dir = mkdtempSync(join(tmpdir(), 'nwc-readme-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function exampleConfig(): string {
  const section = README.slice(README.indexOf('### Configuration file'));
  const m = /```yaml\n([\s\S]*?)```/.exec(section);
  if (!m) throw new Error('README: no yaml block under "### Configuration file"');
  return m[1]!;
}

describe('README configuration example', () => {
  it('is accepted as a whole by serve, and its thresholds are the defaults', () => {
    const token = join(dir, 'token');
    writeFileSync(token, 'secret\n', { mode: 0o600 });
    const cfg = join(dir, 'natwatch.yaml');
    writeFileSync(cfg, exampleConfig().replace('/etc/natwatch/token', token));
    const file = readConfigFile(cfg);
    const s = resolveSettings({}, file, {});
    expect(s).toMatchObject({ host: '127.0.0.1', port: 7600, netns: ['all'], netnsExclude: ['test-*'], token: 'secret', tokenSource: 'file', maxClients: 64 });
    expect(s.alertmanagers).toHaveLength(2);
    expect(s.natRules).toHaveLength(2);
    expect(s.thresholds).toEqual(DEFAULT_THRESHOLDS);
  });
});
