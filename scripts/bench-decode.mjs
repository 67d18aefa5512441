#!/usr/bin/env node
// Decode throughput on the kernel-captured fixtures (no root): the C++ decoder through
// decodeForTest (one call per 4096-record datagram: walk, decode, write the batch, copy it into
// a JS Buffer), then the TypeScript side reading the batch the way the tracker does (numeric
// fields only) and the way `events --json` does (toEvent + JSON.stringify).
//   npm run build && node scripts/bench-decode.mjs
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const { loadNative } = await import(`${ROOT}dist/source/native.js`);
const { CtBatchView, NflogBatchView, readHeader } = await import(`${ROOT}dist/source/codec.js`);
const addon = loadNative();
const RECORDS = 4096;
const SECONDS = 2;

function fixture(name) {
  const hex = readFileSync(`${ROOT}test/fixtures/${name}.hex`, 'utf8').split('\n')
    .map((l) => l.replace(/#.*$/, '').replace(/^\s*[0-9a-f]+:/, '').trim()).join(' ').trim().split(/\s+/).join('');
  return Buffer.from(hex, 'hex');
}

/** The data messages of a datagram (NLMSG_DONE dropped), repeated to `n` messages. */
function repeat(buf, n) {
  const msgs = [];
  for (let off = 0; off + 16 <= buf.length; ) {
    const len = buf.readUInt32LE(off);
    if (buf.readUInt16LE(off + 4) >= 16) msgs.push(buf.subarray(off, off + ((len + 3) & ~3)));
    off += (len + 3) & ~3;
  }
  return Buffer.concat(Array.from({ length: n }, (_, i) => msgs[i % msgs.length]));
}

function measure(label, fn) {
  let records = 0;
  const t0 = process.hrtime.bigint();
  const end = t0 + BigInt(SECONDS * 1e9);
  while (process.hrtime.bigint() < end) records += fn();
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  const rate = records / s;
  console.log(`| ${label} | ${(rate / 1e6).toFixed(2)} M/s | ${(1e9 / rate).toFixed(0)} ns |`);
}

const inputs = {
  'conntrack event (ct-new-tcp-snat)': ['conntrack', repeat(fixture('ct-new-tcp-snat'), RECORDS)],
  'conntrack dump (ct-dump)': ['dump', repeat(fixture('ct-dump'), RECORDS)],
  'conntrack IPv6 (ct-ipv6)': ['conntrack', repeat(fixture('ct-ipv6'), RECORDS)],
  'NFLOG packet (nflog-ipv4-batch3)': ['nflog', repeat(fixture('nflog-ipv4-batch3'), RECORDS)],
};

console.log('| stage | records/s | per record |');
console.log('|---|---|---|');
for (const [label, [kind, buf]] of Object.entries(inputs)) {
  measure(`C++ decode → batch → JS Buffer: ${label}`, () => readHeader(addon.decodeForTest(kind, buf)).count);
}
const ctBatch = addon.decodeForTest('conntrack', inputs['conntrack event (ct-new-tcp-snat)'][1]);
const ctView = new CtBatchView();
let sink = 0;
measure('TS view, numeric fields (kind, id, proto, status, ports)', () => {
  const v = ctView.reset(ctBatch, readHeader(ctBatch).count);
  for (let i = 0; i < v.count; i++) {
    v.seek(i);
    sink ^= v.kind + v.id + v.proto + v.status + v.origDport + v.replyDport;
  }
  return v.count;
});
measure('TS view, + reply-tuple address text', () => {
  const v = ctView.reset(ctBatch, readHeader(ctBatch).count);
  for (let i = 0; i < v.count; i++) sink ^= v.seek(i).replyDst().length;
  return v.count;
});
measure('TS toEvent() + JSON.stringify (events --json)', () => {
  const v = ctView.reset(ctBatch, readHeader(ctBatch).count);
  for (let i = 0; i < v.count; i++) sink ^= JSON.stringify(v.seek(i).toEvent()).length;
  return v.count;
});
const nlBatch = addon.decodeForTest('nflog', inputs['NFLOG packet (nflog-ipv4-batch3)'][1]);
const nlView = new NflogBatchView();
measure('TS NFLOG toEvent() + JSON.stringify', () => {
  const v = nlView.reset(nlBatch, readHeader(nlBatch).count);
  for (let i = 0; i < v.count; i++) sink ^= JSON.stringify(v.seek(i).toEvent()).length;
  return v.count;
});
if (sink === 0.5) console.log(sink); // keep the loops honest
