// `natwatch tail ws://…` in a real terminal (tmux, 120x40) against a server fed by the fake
// streamer: the alert lines scroll, the table of top destinations and the gauge stay below.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { startServer, type StandaloneServer } from '../../src/server/index.js';
import { FakeStreamer } from '../helpers/fake-streamer.js';
import { BIN, ensureBuilt } from '../helpers/cli-build.js';
import { describeLive } from '../helpers/gate.js';

const session = `nwc-tail-${randomBytes(4).toString('hex')}`;
let srv: StandaloneServer;
const streamer = new FakeStreamer({ netns: '/var/run/netns/nwc-demo' });

const tmux = (...args: string[]): string => execFileSync('tmux', args, { encoding: 'utf8', timeout: 5000 });
const screen = (): string => tmux('capture-pane', '-p', '-t', session);
const screenEsc = (): string => tmux('capture-pane', '-p', '-e', '-t', session);

async function waitScreen(pred: (s: string) => boolean, timeoutMs = 8000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let s = '';
  while (Date.now() < deadline) {
    s = screen();
    if (pred(s)) return s;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`screen never matched:\n${s}`);
}

beforeAll(async () => {
  process.env.NATWATCH_LOG_LEVEL ??= 'silent';
  ensureBuilt();
  srv = await startServer(streamer, { port: 0 });
  tmux('new-session', '-d', '-s', session, '-x', '120', '-y', '40', `${process.execPath} ${BIN} tail ws://127.0.0.1:${srv.address.port}; sleep 30`);
}, 180_000);

afterAll(async () => {
  try {
    tmux('kill-session', '-t', session);
  } catch {
    // already gone
  }
  await srv?.close();
});

describeLive('tail in a terminal', () => {
  it('shows alert lines above a live table of top destinations and the conntrack gauge', async () => {
    await waitScreen((s) => s.includes('connected'));
    streamer.topEntries = [
      { netns: 'nwc-demo', key: { proto: 'tcp', natIp: '198.51.100.1', dstIp: '198.51.100.8', dstPort: 80 }, used: 10, capacity: 10, utilization: 1, newPerSec: 3 },
      { netns: 'nwc-demo', key: { proto: 'udp', natIp: '198.51.100.1', dstIp: '203.0.113.53', dstPort: 53 }, used: 6, capacity: 10, utilization: 0.6, newPerSec: 0.5 },
    ];
    streamer.emitStats({ conntrack: { count: 4242, max: 65536, buckets: 16384 } });
    streamer.emitAlert({ drops: 5, etaSeconds: 0, message: 'NAT ports to 198.51.100.8:80 exhausted (10/10)' });
    let s = await waitScreen((x) => x.includes('exhausted (10/10)') && x.includes('4242/65536'));
    const lines = s.split('\n');
    const alertRow = lines.findIndex((l) => l.includes('FIRING') && l.includes('nat_port_exhaustion') && l.includes('198.51.100.8:80'));
    const gaugeRow = lines.findIndex((l) => l.startsWith('conntrack 4242/65536'));
    // Rows name the namespace they are about (the fake streamer watches nwc-demo).
    const topRow = lines.findIndex((l) => l.startsWith('nwc-demo: tcp 198.51.100.1 → 198.51.100.8:80'));
    expect(alertRow).toBeGreaterThanOrEqual(0);
    expect(gaugeRow).toBeGreaterThan(alertRow);
    expect(topRow).toBeGreaterThan(gaugeRow);
    // the top row carries the bar, used/capacity, new/s, drops from the firing alert and ETA
    expect(lines[topRow]).toMatch(/█{20}\s+100%\s+10\/10\s+3\.0\s+5\s+now/);
    expect(lines[topRow + 1]).toMatch(/^nwc-demo: udp 198\.51\.100\.1 → 203\.0\.113\.53:53 .*60%\s+6\/10/);
    // colour: a critical firing alert is red (SGR 31)
    expect(screenEsc()).toMatch(/\x1b\[31m[^\n]*FIRING[^\n]*nat_port_exhaustion/);

    // The table refreshes in place; new alerts scroll above it; resolved is green.
    streamer.emitStats({ conntrack: { count: 5000, max: 65536, buckets: 16384 } });
    streamer.emitAlert({ state: 'resolved', message: 'recovered' });
    s = await waitScreen((x) => x.includes('5000/65536') && x.includes('recovered'));
    expect(s).not.toContain('4242/65536');
    expect(s.split('\n').filter((l) => l.startsWith('conntrack ')).length).toBe(1);
    const l2 = s.split('\n');
    expect(l2.findIndex((l) => l.includes('recovered'))).toBeLessThan(l2.findIndex((l) => l.startsWith('conntrack 5000')));
    expect(screenEsc()).toMatch(/\x1b\[32m[^\n]*RESOLVED/);
  });

  it('shows the reconnect in the status line and catches up on alerts issued meanwhile', async () => {
    const port = srv.address.port;
    await srv.close();
    await waitScreen((x) => /retrying in \d/.test(x));
    const missed = streamer.emitAlert({ severity: 'warning', message: 'issued while away' });
    srv = await startServer(streamer, { port });
    const s = await waitScreen((x) => x.includes('issued while away') && /connected, alerts since #\d+/.test(x));
    expect(s).toMatch(new RegExp(`WARN FIRING +nat_port_exhaustion .*issued while away`));
    expect(missed.seq).toBeGreaterThan(2);
  });
}, { root: false, tools: ['tmux'] });
