// Embedding natwatch in a Node service: watch a namespace, log alerts, and serve the natwatch
// stream and endpoints from the service's own http.Server. Build first (npm run build), then:
//   sudo node examples/embed.mjs [NETNS] [PORT]
import { createServer } from 'node:http';
import { createStreamer, attachServer } from 'natwatch';

const netns = process.argv[2] || null; // a name from `ip netns list`, a path, or the current one
const port = Number(process.argv[3] ?? 8080);

const streamer = createStreamer({ netns, thresholds: { portWarning: 0.8 } });
streamer.on('alert', (a) => console.log(`${a.ts} ${a.severity} ${a.state} ${a.kind}: ${a.message}`));
streamer.on('error', (err) => console.error(`natwatch: ${err.message}`));
await streamer.start(); // needs CAP_NET_ADMIN

const app = createServer((req, res) => {
  if (natwatch.handleRequest(req, res)) return; // /healthz /metrics /v1/alerts /v1/top
  res.end('my service\n');
});
const natwatch = attachServer(app, streamer, { path: '/v1/stream' });
app.listen(port, '127.0.0.1', () => console.log(`listening on http://127.0.0.1:${app.address().port} (ws path /v1/stream)`));

// The same messages as an async iterator (bounded buffer; stops when the streamer closes).
(async () => {
  for await (const m of streamer.messages(['stats'])) {
    if (m.type === 'stats' && m.conntrack.count > 0.9 * m.conntrack.max) console.log('conntrack table almost full');
  }
})();

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.once(sig, async () => {
    await natwatch.close(); // stream clients get 1001
    await streamer.close();
    app.close();
  });
}
