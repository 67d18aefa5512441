// New UDP flows for live tests: each datagram from its own socket (its own source port, so its
// own conntrack entry), `perMs` sockets every millisecond, run in the lab's client namespace.
// Bounded by count and a 20 s deadline; the sockets are closed at the end.
import { ADDR, type Lab } from '../../src/lab/topology.js';

const SCRIPT = `
const dgram = require('node:dgram');
const [host, port, count, perMs] = process.argv.slice(1).map((v, i) => (i === 0 ? v : Number(v)));
const socks = [];
const end = Date.now() + 20000;
const t = setInterval(() => {
  for (let i = 0; i < perMs && socks.length < count; i++) {
    const s = dgram.createSocket('udp4');
    s.on('error', () => {});
    s.send('natwatch-test', port, host);
    socks.push(s);
  }
  if (socks.length >= count || Date.now() > end) {
    clearInterval(t);
    setTimeout(() => { for (const x of socks) x.close(); console.log(JSON.stringify({ sent: socks.length })); }, 200);
  }
}, 1);
`;

/** Sends `count` flows to the lab server's UDP `port`; resolves with how many were sent. */
export async function sendUdpFlows(lab: Lab, port: number, count: number, perMs = 1): Promise<number> {
  const r = await lab.exec(lab.client, process.execPath, ['-e', SCRIPT, ADDR.server, String(port), String(count), String(perMs)], { timeoutMs: 30_000 });
  return JSON.parse(r.stdout.trim().split('\n').pop()!).sent as number;
}
