// A standalone natwatch server (the built dist/) over a minimal in-memory streamer holding
// `RING` alerts in its replay ring, for tests that measure the server process alone under
// hostile load. Prints `PORT <n>` once listening; exits on SIGTERM.
import { EventEmitter } from 'node:events';
import { startServer } from '../../dist/server/index.js';

const RING = Number(process.env.RING ?? 1000);
const key = (i) => ({ proto: 'tcp', natIp: '198.51.100.1', dstIp: '198.51.100.8', dstPort: 1 + (i % 65535) });
const alerts = Array.from({ length: RING }, (_, i) => ({
  type: 'alert', seq: i + 1, ts: new Date().toISOString(), kind: 'nat_port_exhaustion', severity: 'critical', state: 'firing',
  key: key(i), used: 10, capacity: 10, utilization: 1, drops: i,
  message: `NAT source ports for tcp 198.51.100.1 → 198.51.100.8:${key(i).dstPort} are exhausted (10/10): widen the masquerade port range or add SNAT addresses`,
}));

class RingStreamer extends EventEmitter {
  netns = null;
  startedAt = new Date().toISOString();
  get seq() { return alerts.length; }
  firing() { return alerts.slice(); }
  alertsSince(since) { return alerts.filter((a) => a.seq > since); }
  top() { return []; }
  lastStats() { return null; }
  readiness() { return 'ok'; }
  totals() { return { eventsReceived: { conntrack: 0, nflog: 0 }, eventsLost: { conntrack: 0, nflog: 0 } }; }
  async close() {}
}

const srv = await startServer(new RingStreamer(), { port: 0 });
process.stdout.write(`PORT ${srv.address.port}\n`);
process.once('SIGTERM', () => void srv.close().then(() => process.exit(0)));
