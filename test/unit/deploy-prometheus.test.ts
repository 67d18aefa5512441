// The shipped Prometheus rules and Grafana dashboard, checked with the real promtool: the rules
// load, their unit tests pass, every dashboard PromQL expression parses (loaded as recording
// rules), and every natwatch_* name they use is one that /metrics really exports.
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../../src/server/index.js';
import { FakeStreamer } from '../helpers/fake-streamer.js';
import { havePromtool, promtool } from '../helpers/promtool.js';

const DEPLOY = fileURLToPath(new URL('../../deploy/', import.meta.url));
const RULES = join(DEPLOY, 'prometheus/natwatch.rules.yml');
const DASHBOARD = join(DEPLOY, 'grafana/natwatch-dashboard.json');

/** Grafana's variables replaced by values PromQL accepts. */
const GRAFANA_VARS: Record<string, string> = {
  '$__rate_interval': '5m',
  '$__interval': '1m',
  '$__range': '1h',
  '$instance': '.*',
  '${instance}': '.*',
};

function dashboardExprs(): string[] {
  const out: string[] = [];
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) return v.forEach(walk);
    if (typeof v !== 'object' || v === null) return;
    for (const [k, x] of Object.entries(v)) {
      if (k === 'expr' && typeof x === 'string') out.push(x);
      // Template variable queries: label_values(METRIC, LABEL) checks METRIC as an expression.
      else if (k === 'query' && typeof x === 'string') {
        const m = /^label_values\((.+),\s*\w+\)$/.exec(x);
        if (m) out.push(m[1]!);
      } else walk(x);
    }
  };
  walk(JSON.parse(readFileSync(DASHBOARD, 'utf8')));
  return out.map((e) => Object.entries(GRAFANA_VARS).reduce((s, [k, v]) => s.split(k).join(v), e));
}

async function exportedNames(): Promise<Set<string>> {
  const s = new FakeStreamer();
  const srv = await startServer(s, { port: 0 });
  try {
    const text = await (await fetch(`http://127.0.0.1:${srv.address.port}/metrics`)).text();
    return new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
  } finally {
    await srv.close();
  }
}

const tmp = mkdtempSync(join(tmpdir(), 'nwf-prom-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe.runIf(havePromtool())('deploy/prometheus and deploy/grafana with promtool', () => {
  it('natwatch.rules.yml loads (promtool check rules)', () => {
    const r = promtool(['check', 'rules', RULES]);
    expect(r.stdout + r.stderr).toMatch(/SUCCESS: 7 rules found/);
    expect(r.status).toBe(0);
  });

  it('natwatch.rules.test.yml passes (promtool test rules)', () => {
    const r = promtool(['test', 'rules', 'natwatch.rules.test.yml'], undefined, join(DEPLOY, 'prometheus'));
    expect(r.stdout + r.stderr).toMatch(/SUCCESS/);
    expect(r.status).toBe(0);
  });

  it('every dashboard expression is valid PromQL (as recording rules)', () => {
    const exprs = dashboardExprs();
    expect(exprs.length).toBeGreaterThanOrEqual(15);
    const file = join(tmp, 'dashboard.rules.yml');
    const rules = exprs.map((e, i) => `      - record: natwatch:dashboard_expr_${i}\n        expr: ${JSON.stringify(e)}\n`).join('');
    writeFileSync(file, `groups:\n  - name: natwatch-dashboard\n    rules:\n${rules}`);
    const r = promtool(['check', 'rules', file]);
    expect(r.stdout + r.stderr).toContain(`SUCCESS: ${exprs.length} rules found`);
    expect(r.status).toBe(0);
  });

  it('a broken expression is caught (the check can fail)', () => {
    const file = join(tmp, 'broken.rules.yml');
    writeFileSync(file, 'groups:\n  - name: x\n    rules:\n      - record: x:y\n        expr: "rate(natwatch_conntrack_drop_total[5m]"\n');
    expect(promtool(['check', 'rules', file]).status).not.toBe(0);
  });

  it('rules and dashboard only name series that /metrics exports', async () => {
    const names = await exportedNames();
    const used = new Set<string>();
    for (const text of [readFileSync(RULES, 'utf8'), ...dashboardExprs()]) {
      for (const m of text.matchAll(/\b((?:natwatch|process|nodejs)_[a-z0-9_]+)/g)) used.add(m[1]!);
    }
    expect(used.size).toBeGreaterThan(10);
    expect([...used].filter((n) => !names.has(n))).toEqual([]);
  });
});
