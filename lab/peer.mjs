#!/usr/bin/env node
// Traffic peer for lab namespaces (run inside one with `ip netns exec NS node peer.mjs ...`).
// Plain JS so it runs from the source tree and from an installed package alike.
//   serve   --proto tcp|udp --port N [--host ADDR]         listen; hold TCP sockets open, echo UDP
//   connect --proto tcp|udp --to HOST:PORT --count N [--hold-ms H] [--timeout-ms T] [--sport-base P]
//           [--every-ms E]   open N connections at once, hold them H ms, print {"ok":n,"failed":m};
//           with --every-ms, UDP sockets resend every E ms while held (keeps the conntrack entry
//           alive the way a chatty UDP client does); --from ADDR binds the local address (a client
//           namespace with several addresses picks its source)
import net from 'node:net';
import dgram from 'node:dgram';
import { parseArgs } from 'node:util';

const [mode, ...rest] = process.argv.slice(2);
const { values: o } = parseArgs({
  args: rest,
  options: {
    proto: { type: 'string', default: 'tcp' },
    port: { type: 'string' },
    host: { type: 'string' },
    to: { type: 'string' },
    count: { type: 'string', default: '1' },
    'hold-ms': { type: 'string', default: '0' },
    'timeout-ms': { type: 'string', default: '2000' },
    'every-ms': { type: 'string', default: '0' },
    from: { type: 'string' },
  },
});

function hostPort(s) {
  const m = /^\[(.+)\]:(\d+)$/.exec(s) ?? /^([^:]+):(\d+)$/.exec(s);
  if (!m) throw new Error(`bad --to ${s}`);
  return { host: m[1], port: Number(m[2]) };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const MAX_COUNT = 100_000;

if (mode === 'serve') {
  const port = Number(o.port);
  const host = o.host ?? (o.proto.endsWith('6') ? '::' : '::');
  if (o.proto === 'udp') {
    const sock = dgram.createSocket({ type: 'udp6', ipv6Only: false });
    sock.on('message', (msg, rinfo) => sock.send(msg, rinfo.port, rinfo.address));
    sock.bind(port, host, () => process.stdout.write('ready\n'));
  } else {
    const held = new Set();
    const srv = net.createServer((s) => {
      held.add(s);
      s.on('error', () => {});
      s.on('close', () => held.delete(s));
    });
    srv.listen({ port, host, backlog: 4096 }, () => process.stdout.write('ready\n'));
  }
} else if (mode === 'connect') {
  const { host, port } = hostPort(o.to);
  const count = Math.min(Number(o.count), MAX_COUNT);
  const timeoutMs = Number(o['timeout-ms']);
  const holdMs = Number(o['hold-ms']);
  const opened = [];
  const one = () =>
    new Promise((resolve) => {
      if (o.proto === 'udp') {
        const sock = dgram.createSocket(net.isIPv6(host) ? 'udp6' : 'udp4');
        opened.push(sock);
        const t = setTimeout(() => resolve(false), timeoutMs);
        sock.on('message', () => { clearTimeout(t); resolve(true); });
        sock.on('error', () => { clearTimeout(t); resolve(false); });
        if (o.from) sock.bind(0, o.from, () => sock.send('natwatch-lab', port, host));
        else sock.send('natwatch-lab', port, host);
      } else {
        const s = net.connect({ host, port, ...(o.from ? { localAddress: o.from } : {}) });
        opened.push(s);
        const t = setTimeout(() => resolve(false), timeoutMs);
        s.on('connect', () => { clearTimeout(t); resolve(true); });
        s.on('error', () => { clearTimeout(t); resolve(false); });
      }
    });
  const everyMs = Number(o['every-ms']);
  const resend = o.proto === 'udp' && everyMs > 0
    ? setInterval(() => { for (const s of opened) s.send('natwatch-lab', port, host); }, Math.max(everyMs, 50))
    : null;
  const results = await Promise.all(Array.from({ length: count }, one));
  const ok = results.filter(Boolean).length;
  process.stdout.write(JSON.stringify({ ok, failed: count - ok }) + '\n');
  if (holdMs > 0) await sleep(holdMs);
  if (resend) clearInterval(resend);
  for (const s of opened) (s.destroy ?? s.close).call(s);
  process.exit(0);
} else {
  process.stderr.write('usage: peer.mjs serve|connect ...\n');
  process.exit(2);
}
