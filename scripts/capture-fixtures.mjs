#!/usr/bin/env node
// Refreshes test/fixtures/*.hex: raw netlink datagrams captured from this kernel in a throwaway
// lab (root), written as annotated hex, each with the reference tool's view of the same entry
// (`conntrack -E -o id`, `conntrack -L -o id`, `conntrack -S`) for the tests to compare with.
//   node scripts/capture-fixtures.mjs [NAME...]   (needs root, a built addon and `npm run build`)
// With names, only those fixtures are rewritten (the lab still runs every scenario).
import { execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
execFileSync(process.execPath, [`${ROOT}node_modules/typescript/bin/tsc`, '-p', `${ROOT}tsconfig.build.json`], { stdio: 'inherit' });
const { createLab, ADDR } = await import(`${ROOT}dist/lab/topology.js`);
const { loadNative } = await import(`${ROOT}dist/source/native.js`);
const { CtBatchView, readHeader } = await import(`${ROOT}dist/source/codec.js`);
const addon = loadNative();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const only = new Set(process.argv.slice(2));
const out = (name, text) => writeFileSync(`${ROOT}test/fixtures/${name}.hex`, text);

// --- annotated hex ----------------------------------------------------------------------------
const NLA_F_NESTED = 0x8000;
function hexLine(buf, off, n, note) {
  const bytes = [...buf.subarray(off, off + n)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  return `${off.toString(16).padStart(4, '0')}: ${bytes.padEnd(47)}${note ? `  # ${note}` : ''}\n`;
}
function dumpBytes(buf, off, n, note, depth) {
  let s = '';
  for (let i = 0; i < n; i += 16) s += hexLine(buf, off + i, Math.min(16, n - i), i === 0 ? `${'  '.repeat(depth)}${note}` : '');
  return s;
}
function attrs(buf, off, end, depth) {
  let s = '';
  while (off + 4 <= end) {
    const len = buf.readUInt16LE(off);
    const type = buf.readUInt16LE(off + 2);
    if (len < 4 || off + len > end) return s + dumpBytes(buf, off, end - off, 'malformed tail', depth);
    const nested = (type & NLA_F_NESTED) !== 0;
    const t = type & 0x3fff;
    if (nested) {
      s += hexLine(buf, off, 4, `${'  '.repeat(depth)}attr type=${t} nested len=${len}`);
      s += attrs(buf, off + 4, off + len, depth + 1);
    } else {
      s += dumpBytes(buf, off, Math.max(4, (len + 3) & ~3), `attr type=${t} len=${len}`, depth);
    }
    off += (len + 3) & ~3;
  }
  return s;
}
function annotate(buf) {
  let s = '';
  let off = 0;
  while (off + 16 <= buf.length) {
    const len = buf.readUInt32LE(off);
    const type = buf.readUInt16LE(off + 4);
    const flags = buf.readUInt16LE(off + 6);
    s += hexLine(buf, off, 16, `nlmsghdr len=${len} type=0x${type.toString(16)} (subsys ${type >> 8} msg ${type & 0xff}) flags=0x${flags.toString(16)} seq=${buf.readUInt32LE(off + 8)}`);
    if (type >= 16 && len >= 20) {
      s += hexLine(buf, off + 16, 4, `nfgenmsg family=${buf[off + 16]} version=${buf[off + 17]} res_id=${buf.readUInt16BE(off + 18)}`);
      s += attrs(buf, off + 20, off + len, 1);
    } else if (len > 16) {
      s += dumpBytes(buf, off + 16, len - 16, type === 2 ? 'nlmsgerr' : 'payload', 1);
    }
    off += (len + 3) & ~3;
  }
  return s;
}
function fixture(name, title, datagram, refs) {
  if (only.size && !only.has(name)) return;
  let s = `# ${name}: ${title}\n# Captured from Linux ${execFileSync('uname', ['-r']).toString().trim()} by scripts/capture-fixtures.mjs; one raw datagram.\n`;
  for (const r of refs) s += `# ref: ${r}\n`;
  out(name, s + annotate(datagram));
  console.log(`wrote test/fixtures/${name}.hex (${datagram.length} bytes, ${refs.length} refs)`);
}

// --- capture ------------------------------------------------------------------------------------
// Through the codec, not hand-written offsets (they went stale when the header grew to 48 bytes).
const decodeCt = (d) => {
  const b = addon.decodeForTest('conntrack', d);
  const v = new CtBatchView().reset(b, readHeader(b).count);
  return Array.from({ length: v.count }, (_, i) => {
    v.seek(i);
    return { id: v.id, kind: v.kind, family: v.family, proto: v.proto };
  });
};
const idOf = (line) => Number(/\bid=(\d+)(?!.*\bid=)/.exec(line)?.[1] ?? -1);

// One ICMP echo request (no ping binary here): raw socket, checksum by hand.
const PING = `import socket, struct, sys
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
body = struct.pack('!BBHHH', 8, 0, 0, 0x4e57, 1) + b'natwatch'
pkt = body[:2] + struct.pack('!H', csum(body)) + body[4:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(1)
s.sendto(pkt, (sys.argv[1], 0))
try: s.recv(256)
except Exception: pass`;

// ICMPv6 echo request: the kernel fills in the checksum of a raw ICMPv6 socket.
const PING6 = `import socket, struct, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
s.settimeout(1)
s.sendto(struct.pack('!BBHHH', 128, 0, 0, 0x4e57, 1) + b'natwatch', (sys.argv[1], 0))
try: s.recv(256)
except Exception: pass`;

// IPv6 extension headers: one UDP datagram behind hop-by-hop and destination options (sticky
// socket options, 8-byte PadN headers), then one of 3000 bytes that the sender fragments.
const EXTHDR6 = `import socket, sys
pad = bytes([0, 0, 1, 4, 0, 0, 0, 0])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_HOPOPTS, pad)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_DSTOPTS, pad)
s.sendto(b'natwatch', (sys.argv[1], 9996))
f = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
f.sendto(b'n' * 3000, (sys.argv[1], 9996))`;

// One entry per NFULNL_MSG_PACKET of a datagram: group, prefix and the packet bytes copied.
function nflogPackets(d) {
  const pkts = [];
  for (let off = 0; off + 20 <= d.length;) {
    const len = d.readUInt32LE(off);
    if (len < 16 || off + len > d.length) break;
    if (d.readUInt16LE(off + 4) === 0x0400) {
      const p = { group: d.readUInt16BE(off + 18), prefix: '', payload: Buffer.alloc(0) };
      for (let a = off + 20; a + 4 <= off + len;) {
        const alen = d.readUInt16LE(a);
        if (alen < 4) break;
        const type = d.readUInt16LE(a + 2) & 0x3fff;
        if (type === 9) p.payload = d.subarray(a + 4, a + alen); // NFULA_PAYLOAD
        if (type === 10) p.prefix = d.subarray(a + 4, a + alen).toString().replace(/\0.*$/s, ''); // NFULA_PREFIX
        a += (alen + 3) & ~3;
      }
      pkts.push(p);
    }
    off += (len + 3) & ~3;
  }
  return pkts;
}

const lab = await createLab({ prefix: 'nwa', ipv6: true });
try {
  const ns = lab.nsPath(lab.router);
  await lab.nft(lab.router, `table ip nat { chain post { type nat hook postrouting priority 100; oifname "r-out" meta l4proto { tcp, udp } masquerade to :50000-50009; oifname "r-out" masquerade; }; }
table ip6 track { chain f { type filter hook forward priority 0; ct state new counter; }; }
table inet filter { chain forward { type filter hook forward priority 0; tcp dport 9999 log prefix "blocked-9999 " group 5 drop; }; }`);
  for (const [proto, port] of [['tcp', '80'], ['udp', '53']]) await lab.spawnPeer(lab.server, ['serve', '--proto', proto, '--port', port]).ready;

  const ev = spawn('ip', ['netns', 'exec', lab.router, 'stdbuf', '-oL', 'conntrack', '-E', '-o', 'id'], { stdio: ['ignore', 'pipe', 'ignore'] });
  let evOut = '';
  ev.stdout.on('data', (d) => (evOut += d));
  const capture = addon.capture({ netns: ns, what: 'events', timeoutMs: 4000, max: 200 });
  await sleep(300);
  await lab.runPeer(lab.client, ['connect', '--proto', 'tcp', '--to', `${ADDR.server}:80`, '--count', '1', '--hold-ms', '200']);
  await lab.runPeer(lab.client, ['connect', '--proto', 'udp', '--to', `${ADDR.server}:53`, '--count', '1']);
  await lab.runPeer(lab.client, ['connect', '--proto', 'udp', '--to', `[${ADDR.server6}]:53`, '--count', '1']);
  await lab.exec(lab.client, 'python3', ['-c', PING, ADDR.server]);
  await lab.exec(lab.router, 'conntrack', ['-D', '-p', 'tcp']);
  const datagrams = await capture;
  await sleep(200);
  ev.kill('SIGTERM');
  const lines = evOut.split('\n').filter(Boolean);
  const pick = (name, title, want) => {
    for (const d of datagrams) {
      const recs = decodeCt(d);
      if (recs.length === 1 && want(recs[0])) {
        const tag = ['', '[NEW]', '[UPDATE]', '[DESTROY]'][recs[0].kind];
        const refs = lines.filter((l) => idOf(l) === recs[0].id && l.includes(tag));
        return fixture(name, title, d, refs);
      }
    }
    throw new Error(`no datagram for ${name}`);
  };
  pick('ct-new-tcp-snat', 'IPCTNL_MSG_CT_NEW with NLM_F_CREATE|NLM_F_EXCL, TCP SYN through masquerade', (r) => r.kind === 1 && r.proto === 6);
  pick('ct-update', 'IPCTNL_MSG_CT_NEW without CREATE (TCP state change)', (r) => r.kind === 2 && r.proto === 6);
  pick('ct-destroy', 'IPCTNL_MSG_CT_DELETE (conntrack -D)', (r) => r.kind === 3 && r.proto === 6);
  pick('ct-udp', 'new UDP flow through masquerade', (r) => r.kind === 1 && r.proto === 17 && r.family === 4);
  pick('ct-icmp', 'new ICMP echo flow (id in the port fields)', (r) => r.kind === 1 && r.proto === 1);
  pick('ct-ipv6', 'new UDP flow over IPv6 (no NAT)', (r) => r.kind === 1 && r.family === 6);

  // A table dump: several entries in one multipart datagram.
  const held = lab.spawnPeer(lab.client, ['connect', '--proto', 'tcp', '--to', `${ADDR.server}:80`, '--count', '3', '--hold-ms', '3000']);
  await sleep(600);
  const listed = (await lab.exec(lab.router, 'conntrack', ['-L', '-o', 'id'])).stdout.split('\n').filter((l) => /\bid=\d/.test(l));
  const dump = await addon.capture({ netns: ns, what: 'dump', timeoutMs: 2000, max: 10 });
  fixture('ct-dump', 'IPCTNL_MSG_CT_GET dump reply (AF_UNSPEC), NLM_F_MULTI, up to NLMSG_DONE', Buffer.concat(dump), listed);
  held.kill();

  // NFLOG: three SYNs to the dropped port, batched by the kernel into one datagram.
  const nflog = addon.capture({ netns: ns, what: 'nflog', groups: [5], timeoutMs: 2500, max: 20 });
  await sleep(300);
  await lab.runPeer(lab.client, ['connect', '--proto', 'tcp', '--to', `${ADDR.server}:9999`, '--count', '3', '--timeout-ms', '300']);
  const nl = (await nflog).filter((d) => d.readUInt16LE(4) === 0x0400); // NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_PACKET
  const batch = nl.find((d) => readHeader(addon.decodeForTest('nflog', d)).count >= 3) ?? Buffer.concat(nl.slice(0, 3));
  fixture('nflog-ipv4-batch3', 'NFULNL_MSG_PACKET x3 (log prefix "blocked-9999 " group 5, copy 128 bytes, F_SEQ)', batch,
    [`client=${ADDR.client} server=${ADDR.server} dport=9999 indev-ifindex/outdev-ifindex of r-in/r-out`]);

  // Per-CPU counters and the reference tool's sums, after a port-exhaustion burst so that
  // insert_failed/drop are not all zero (15 UDP flows, 10 NAT ports).
  await lab.runPeer(lab.client, ['connect', '--proto', 'udp', '--to', `${ADDR.server}:53`, '--count', '15', '--timeout-ms', '300']);
  const stats = await addon.capture({ netns: ns, what: 'stats', timeoutMs: 2000, max: 10 });
  const s = (await lab.exec(lab.router, 'conntrack', ['-S'])).stdout.trim().split('\n');
  fixture('stats-cpu', 'IPCTNL_MSG_CT_GET_STATS_CPU dump reply, one message per CPU', Buffer.concat(stats), s);

  // NFLOG packets that reach the decoder's less travelled paths (the fuzz targets' seeds,
  // test/fuzz): the longest prefix nft accepts (NF_LOG_PREFIXLEN - 1 = 127 characters), ICMP
  // and ICMPv6 echo ids, and IPv6 extension headers logged before defragmentation (priority
  // -450, ahead of conntrack's -400), so fragments arrive as sent.
  const longPrefix = `natwatch-longest-prefix-${'x'.repeat(127 - 24 - 1)}.`;
  await lab.nft(lab.router, `table inet filter { chain forward { udp dport 9997 log prefix "${longPrefix}" group 5 accept; icmp type echo-request log prefix "echo " group 5 accept; icmpv6 type echo-request log prefix "echo6 " group 5 accept; }; }
table ip6 rawlog { chain pre { type filter hook prerouting priority -450; ip6 nexthdr { 0, 44, 60 } log prefix "exthdr " group 6 snaplen 128; }; }`);
  const more = addon.capture({ netns: ns, what: 'nflog', groups: [5, 6], timeoutMs: 6000, max: 40 });
  await sleep(300);
  await lab.runPeer(lab.client, ['connect', '--proto', 'udp', '--to', `${ADDR.server}:9997`, '--count', '1', '--timeout-ms', '300']);
  await lab.exec(lab.client, 'python3', ['-c', PING, ADDR.server]);
  await lab.exec(lab.client, 'python3', ['-c', PING6, ADDR.server6]);
  await lab.exec(lab.client, 'python3', ['-c', EXTHDR6, ADDR.server6]);
  // NFLOG flushes a group's queued packets after its 1 s timer: the window covers it.
  const got = (await more).filter((d) => nflogPackets(d).length > 0);
  const find = (name, want) => {
    const ds = got.filter((d) => nflogPackets(d).some(want));
    if (ds.length === 0) throw new Error(`no datagram for ${name}`);
    return ds;
  };
  const prefixed = find('nflog-prefix-max', (p) => p.prefix === longPrefix);
  fixture('nflog-prefix-max', `NFULNL_MSG_PACKET with a ${longPrefix.length}-character prefix (NF_LOG_PREFIXLEN - 1, NUL included: 128 bytes)`, prefixed[0],
    [`prefix=${longPrefix} group=5 udp ${ADDR.client} -> ${ADDR.server}:9997`]);
  const echo4 = find('nflog-icmp-echo', (p) => p.prefix === 'echo ')[0];
  const echo6 = find('nflog-icmp-echo', (p) => p.prefix === 'echo6 ')[0];
  fixture('nflog-icmp-echo', 'NFULNL_MSG_PACKET: ICMP echo request, then ICMPv6 echo request (id 0x4e57 = 20055)', Buffer.concat([echo4, echo6]),
    [`icmp echo-request id=20055 ${ADDR.client} -> ${ADDR.server}`, `icmpv6 echo-request id=20055 ${ADDR.client6} -> ${ADDR.server6}`]);
  // payload[6] is the fixed header's next header: 0 hop-by-hop, 44 fragment. The kernel often
  // batches all of them (and an NLMSG_DONE) into one datagram: keep each datagram once.
  const nh = (...v) => (p) => p.prefix === 'exthdr ' && p.payload.length >= 40 && v.includes(p.payload[6]);
  find('nflog-ipv6-exthdr', nh(0));
  find('nflog-ipv6-exthdr', nh(44));
  fixture('nflog-ipv6-exthdr', 'NFULNL_MSG_PACKET: UDP behind hop-by-hop and destination options headers, then the fragments of a 3000-byte UDP datagram (snaplen 128), logged before defrag',
    Buffer.concat(find('nflog-ipv6-exthdr', nh(0, 44))), [`udp ${ADDR.client6} -> [${ADDR.server6}]:9996: hop-by-hop(PadN) + dest-opts(PadN) + 8 bytes, then 3000 bytes in fragments`]);
} finally {
  await lab.destroy();
}
