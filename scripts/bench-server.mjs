#!/usr/bin/env node
// Stream server benchmark (BENCHMARKS.md "## Stream server"). Needs a build (npx tsc -p tsconfig.json).
//   node scripts/bench-server.mjs [--quick]
// Broadcasts conntrack events from an in-process fake streamer to N real ws clients (in a
// child process, so the server's CPU is measured alone) and reports messages/s delivered to
// every client and the server's CPU per broadcast, per format. Each broadcast is encoded once
// per format, so the per-client cost is the frame write only.
import { fork } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';

const quick = process.argv.includes('--quick');
const self = fileURLToPath(import.meta.url);

if (process.argv[2] === '--client') {
  // Child: open N connections, count messages, report when each saw `want` events.
  const { default: WebSocket } = await import('ws');
  const [, , , url, n, want] = process.argv;
  let done = 0;
  for (let i = 0; i < Number(n); i++) {
    const ws = new WebSocket(url, { perMessageDeflate: false });
    let got = 0;
    ws.on('message', () => {
      if (++got === Number(want) + 1) { // + hello
        ws.close();
        if (++done === Number(n)) process.send('done');
      }
    });
    ws.on('open', () => process.send('open'));
  }
} else {
  const { startServer } = await import('../dist/server/index.js');
  process.env.NATWATCH_LOG_LEVEL = 'silent';
  const streamer = Object.assign(new EventEmitter(), {
    seq: 0, netns: null, startedAt: new Date().toISOString(),
    firing: () => [], alertsSince: () => [], top: () => [], lastStats: () => null,
    totals: () => ({ eventsReceived: { conntrack: 0, nflog: 0 }, eventsLost: { conntrack: 0, nflog: 0 } }),
    close: async () => {},
  });
  const ev = (id) => ({
    type: 'event', source: 'conntrack', event: 'new', id, ts: new Date().toISOString(), family: 'ipv4', proto: 'tcp',
    orig: { src: '192.0.2.5', dst: '198.51.100.8', sport: 40000 + (id % 20000), dport: 80 },
    reply: { src: '198.51.100.8', dst: '198.51.100.1', sport: 80, dport: 50000 + (id % 10) },
    state: 'SYN_SENT', nat: 'snat', timeout: 120, mark: 0, zone: 0,
  });
  const total = quick ? 20_000 : 100_000;
  console.log(`| format | clients | events | wall s | msgs/s per client | server CPU µs/broadcast | gaps |`);
  console.log(`|---|---|---|---|---|---|---|`);
  for (const format of ['json', 'msgpack', 'ecs']) {
    for (const clients of [1, 4]) {
      const srv = await startServer(streamer, { port: 0, highWaterMark: 4 << 20, hardLimit: 64 << 20 });
      const child = fork(self, ['--client', `${srv.url}?format=${format}&types=event,gap`, String(clients), String(total)], { stdio: 'inherit' });
      let opened = 0;
      await new Promise((r) => child.on('message', (m) => m === 'open' && ++opened === clients && r()));
      await new Promise((r) => setTimeout(r, 100));
      const doneP = new Promise((r) => child.on('message', (m) => m === 'done' && r()));
      const t0 = process.hrtime.bigint();
      const cpu0 = process.cpuUsage();
      // Emit in slices so the event loop can flush sockets, as batches from the source would.
      for (let i = 0; i < total; ) {
        for (const end = Math.min(total, i + 500); i < end; i++) streamer.emit('event', ev(i));
        await new Promise((r) => setImmediate(r));
      }
      const cpu = process.cpuUsage(cpu0);
      await Promise.race([doneP, new Promise((r) => setTimeout(r, 60_000))]);
      const wall = Number(process.hrtime.bigint() - t0) / 1e9;
      const gaps = srv.clients().reduce((n, c) => n + c.dropped, 0);
      console.log(`| ${format} | ${clients} | ${total} | ${wall.toFixed(2)} | ${Math.round(total / wall)} | ${((cpu.user + cpu.system) / total).toFixed(2)} | ${gaps} |`);
      child.kill();
      await srv.close();
    }
  }
}
