// CLI parity, the parts that need no root: `events` filters over kernel-captured records,
// `top`'s table, and the one-line usage errors (exit 2) of the new flags through the real bin.
import { describe, expect, it } from 'vitest';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CtBatchView, NflogBatchView, readHeader } from '../../src/source/codec.js';
import { loadNative } from '../../src/source/native.js';
import { conntrackMatches, nflogMatches, parseEventFilter } from '../../src/cli/event-filter.js';
import { formatTop } from '../../src/cli/top.js';
import { readFixture } from '../fixtures/fixtures.js';
import { FakeStreamer } from '../helpers/fake-streamer.js';

const addon = loadNative();

function ctView(name: string): CtBatchView {
  const batch = addon.decodeForTest('conntrack', readFixture(name).bytes, Date.now());
  return new CtBatchView().reset(batch, readHeader(batch).count).seek(0);
}

describe('events filters', () => {
  // ct-new-tcp-snat: NEW tcp 192.0.2.5 → 198.51.100.8:80, masqueraded. ct-udp: NEW udp → :53,
  // masqueraded. ct-icmp: NEW icmp echo. ct-destroy: DESTROY of the tcp flow.
  const match = (name: string, flags: Parameters<typeof parseEventFilter>[0]) => conntrackMatches(parseEventFilter(flags), ctView(name));

  it('--proto, --dst, --event, --nat select the records they name', () => {
    expect(match('ct-new-tcp-snat', { proto: 'tcp' })).toBe(true);
    expect(match('ct-udp', { proto: 'tcp' })).toBe(false);
    expect(match('ct-udp', { proto: 'tcp,17' })).toBe(true);
    expect(match('ct-icmp', { proto: 'icmp' })).toBe(true);
    expect(match('ct-new-tcp-snat', { dst: '198.51.100.8:80' })).toBe(true);
    expect(match('ct-new-tcp-snat', { dst: '198.51.100.8' })).toBe(true);
    expect(match('ct-udp', { dst: '198.51.100.8:80' })).toBe(false);
    expect(match('ct-new-tcp-snat', { dst: '198.51.100.9' })).toBe(false);
    expect(match('ct-new-tcp-snat', { event: 'new' })).toBe(true);
    expect(match('ct-destroy', { event: 'new,update' })).toBe(false);
    expect(match('ct-destroy', { event: 'destroy' })).toBe(true);
    expect(match('ct-new-tcp-snat', { nat: 'snat' })).toBe(true);
    expect(match('ct-new-tcp-snat', { nat: 'dnat' })).toBe(false);
    expect(match('ct-new-tcp-snat', { proto: 'tcp', dst: '198.51.100.8:80', event: 'new', nat: 'snat' })).toBe(true);
  });

  it('NFLOG packets: --proto and --dst apply; --event and --nat select conntrack only', () => {
    const batch = addon.decodeForTest('nflog', readFixture('nflog-ipv4-batch3').bytes, Date.now());
    const v = new NflogBatchView().reset(batch, readHeader(batch).count).seek(0);
    expect(nflogMatches(parseEventFilter({ dst: `${v.dst()}:${v.dport}` }), v)).toBe(true);
    expect(nflogMatches(parseEventFilter({ proto: 'udp' }), v)).toBe(v.proto === 17);
    expect(nflogMatches(parseEventFilter({ event: 'new' }), v)).toBe(false);
    expect(nflogMatches(parseEventFilter({ nat: 'snat' }), v)).toBe(false);
  });

  it('bad values are usage errors naming the flag', () => {
    expect(() => parseEventFilter({ proto: 'tcpp' })).toThrow("--proto: 'tcpp' is not a protocol name");
    expect(() => parseEventFilter({ dst: '198.51.100.8:99999' })).toThrow("--dst: '198.51.100.8:99999' is not IP, IP:PORT or [IPv6]:PORT");
    expect(() => parseEventFilter({ event: 'new,created' })).toThrow("--event: 'created' is not one of new, update, destroy");
    expect(() => parseEventFilter({ nat: 'masq' })).toThrow("--nat: 'masq' is not snat or dnat");
  });
});

describe('top table', () => {
  it('table use, kernel drops and the busiest destinations, aligned', () => {
    const s = new FakeStreamer();
    s.topEntries = [
      { key: { proto: 'tcp', natIp: '198.51.100.1', dstIp: '198.51.100.8', dstPort: 80 }, used: 10, capacity: 10, utilization: 1, newPerSec: 0 },
      { key: { proto: 'udp', natIp: '2001:db8::1', dstIp: '2001:db8:1::8', dstPort: 53 }, used: 7, capacity: 64512, utilization: 7 / 64512, newPerSec: 0 },
    ];
    const text = formatTop(s.emitStats({ conntrack: { count: 120, max: 262144, buckets: 65536 } }));
    expect(text.split('\n')).toEqual([
      'conntrack  120/262144 entries (0.0%)  65536 buckets',
      'kernel     insert_failed 5  drop 5  early_drop 0  invalid 1  error 0  clash_resolve 0',
      '',
      'PROTO  SOURCE/NAT IP  DESTINATION         USED  LIMIT     USE',
      'tcp    198.51.100.1   198.51.100.8:80       10     10  100.0%',
      'udp    2001:db8::1    [2001:db8:1::8]:53     7  64512    0.0%',
      '',
    ]);
  });
});

const BIN = fileURLToPath(new URL('../../bin/natwatch.js', import.meta.url));
const built = existsSync(fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url)));

describe.runIf(built)('usage errors of the new flags (built CLI): one line, exit 2', () => {
  for (const [args, msg] of [
    [['events', '--format', 'xml'], "--format: 'xml' is not one of text, json, ecs"],
    [['events', '--json', '--format', 'ecs'], '--json: conflicts with --format ecs'],
    [['events', '--event', 'open'], "--event: 'open' is not one of new, update, destroy"],
    [['tail', '--severity', 'info'], "--severity: 'info' is not warning or critical"],
    [['tail', '--dst', 'gateway'], "--dst: 'gateway' is not IP or IP:PORT"],
    [['tail', '--format', 'yaml'], "--format: 'yaml' is not one of text, json, ecs"],
    [['doctor', '--fail-on', 'info'], "--fail-on: 'info' is not warn or fail"],
    [['top', '--nat-ports', '9-1'], "--nat-ports: '9-1' is not a port range within 1-65535"],
  ] as const) {
    it(`natwatch ${args.join(' ')}`, () => {
      const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 20_000 });
      expect(r.stderr).toBe(`natwatch: ${msg}\n`);
      expect(r.status).toBe(2);
    });
  }
});
