// format=ecs documents checked against the official ECS field list (@elastic/ecs): conntrack
// and NFLOG events decoded from kernel-captured fixtures, alerts of every kind (firing and
// resolved), stats and the control messages. Also what the issue asks of them beyond validity:
// connection start/end, DNAT, IANA transport, ICMP ids not as ports, rule.name, denied only
// when the rule drops, one event.id per episode.
import { describe, expect, it } from 'vitest';
import { hostname } from 'node:os';
import { CtBatchView, NflogBatchView, readHeader } from '../../src/source/codec.js';
import { loadNative } from '../../src/source/native.js';
import { alertToEcs, controlToEcs, ecsContext, eventToEcs, statsToEcs } from '../../src/server/ecs.js';
import type { Alert, AlertKind, ConntrackEvent, NflogEvent, WireEvent } from '../../src/types.js';
import { readFixture } from '../fixtures/fixtures.js';
import { FakeStreamer } from '../helpers/fake-streamer.js';
import { ecsProblems } from '../helpers/ecs-validate.js';

const addon = loadNative();
const TS = Date.UTC(2026, 0, 2, 3, 4, 5, 678);

function fixtureEvents(): WireEvent[] {
  const out: WireEvent[] = [];
  for (const name of ['ct-new-tcp-snat', 'ct-update', 'ct-destroy', 'ct-udp', 'ct-icmp', 'ct-ipv6']) {
    const batch = addon.decodeForTest('conntrack', readFixture(name).bytes, TS);
    const v = new CtBatchView().reset(batch, readHeader(batch).count);
    for (let i = 0; i < v.count; i++) out.push(v.seek(i).toEvent());
  }
  const batch = addon.decodeForTest('nflog', readFixture('nflog-ipv4-batch3').bytes, TS);
  const v = new NflogBatchView().reset(batch, readHeader(batch).count);
  for (let i = 0; i < v.count; i++) out.push(v.seek(i).toEvent());
  return out;
}

const KEYS: Record<AlertKind, Alert['key']> = {
  nat_port_exhaustion: { proto: 'tcp', natIp: '198.51.100.1', dstIp: '198.51.100.8', dstPort: 80 },
  local_port_exhaustion: { proto: 'udp', natIp: '2001:db8::5', dstIp: '2001:db8:1::8', dstPort: 53 },
  conntrack_table_full: {},
  conntrack_drops: {},
  nflog_drop: { prefix: 'blocked-9999 ', group: 5, proto: 'tcp', dstIp: '198.51.100.8', dstPort: 9999 },
  event_loss: {},
};

function alertsOfEveryKind(): Alert[] {
  const s = new FakeStreamer();
  const out: Alert[] = [];
  s.on('alert', (a) => out.push(a));
  for (const [kind, key] of Object.entries(KEYS) as Array<[AlertKind, Alert['key']]>) {
    const port = 'dstPort' in key && kind !== 'nflog_drop';
    s.emitAlert({ kind, key, used: port ? 10 : kind === 'conntrack_table_full' ? 950 : null, capacity: port ? 10 : kind === 'conntrack_table_full' ? 1000 : null, etaSeconds: port ? 3 : undefined });
    s.emitAlert({ kind, key, state: 'resolved' });
  }
  // The nflog_drop aggregate: one rule, no single destination.
  s.emitAlert({ kind: 'nflog_drop', key: { prefix: 'blocked ', group: 5, proto: null, dstIp: null, dstPort: null }, used: null, capacity: null, drops: 400 });
  return out;
}

describe('ECS documents against the official field list', () => {
  const ctx = ecsContext({ netns: '/var/run/netns/gw-a', nflogDenies: (g) => (g === 5 ? true : null) });

  it('events decoded from kernel fixtures', () => {
    const events = fixtureEvents();
    expect(events.filter((e) => e.source === 'conntrack').length).toBeGreaterThanOrEqual(6);
    expect(events.filter((e) => e.source === 'nflog').length).toBe(3);
    for (const e of events) expect(ecsProblems(eventToEcs(e, ctx)), JSON.stringify(e)).toEqual([]);
  });

  it('alerts of every kind, firing and resolved; stats; control messages', () => {
    for (const a of alertsOfEveryKind()) expect(ecsProblems(alertToEcs(a, ctx)), `${a.kind} ${a.state}`).toEqual([]);
    const s = new FakeStreamer();
    s.topEntries = [{ key: KEYS.nat_port_exhaustion as never, used: 7, capacity: 10, utilization: 0.7, newPerSec: 2 }];
    expect(ecsProblems(statsToEcs(s.emitStats(), ctx))).toEqual([]);
    for (const m of [
      { type: 'hello', version: '0.1.0', host: 'gw', netns: null, startedAt: new Date().toISOString(), seq: 0 },
      { type: 'gap', dropped: 12, reason: 'client too slow' },
      { type: 'subscribed', types: ['alert'], severity: null, dst: null, seq: 3 },
      { type: 'error', message: 'malformed JSON' },
    ]) {
      const doc = controlToEcs(m, ctx);
      expect(ecsProblems(doc), m.type).toEqual([]);
      expect(doc).toMatchObject({ event: { kind: 'event', dataset: 'natwatch.control', action: m.type }, host: { name: hostname() }, natwatch: { netns: 'gw-a' } });
    }
  });

  it('the validator does reject what is not ECS (the check can fail)', () => {
    const good = controlToEcs({ type: 'hello' }, ctx);
    expect(ecsProblems({ ...good, destination: { port: '80' } })).toEqual(['destination.port: "80" is not a long']);
    expect(ecsProblems({ ...good, event: { kind: 'alarm' } })).toEqual(["event.kind: 'alarm' is not an allowed value"]);
    expect(ecsProblems({ ...good, event: { kind: 'event', category: ['network'], type: ['creation'] } })).toEqual([
      "event.type: 'creation' is not expected for event.category [\"network\"]",
    ]);
    expect(ecsProblems({ ...good, network: { protocol_number: 6 } })).toEqual(['network.protocol_number: not an ECS field']);
    expect(ecsProblems({ ...good, natwatch: { etaSeconds: 1 } })).toEqual(['natwatch.etaSeconds: custom field not snake_case']);
    const { host: _h, ...noHost } = good;
    expect(ecsProblems(noHost)).toEqual(['host.name: missing']);
  });
});

describe('what the SIEM gets', () => {
  const ev = (over: Partial<ConntrackEvent>): ConntrackEvent => ({
    type: 'event', source: 'conntrack', netns: null, event: 'new', id: 1, ts: new Date(TS).toISOString(), family: 'ipv4', proto: 'tcp',
    orig: { src: '192.0.2.5', dst: '203.0.113.10', sport: 40000, dport: 443 },
    reply: { src: '198.51.100.8', dst: '192.0.2.5', sport: 8443, dport: 40000 },
    state: 'SYN_SENT', nat: 'dnat', timeout: 120, mark: 0, zone: 0, ...over,
  });

  it('connection start/end, DNAT in destination.nat, IANA transport, ICMP ids not as ports', () => {
    const ctx = ecsContext();
    expect(eventToEcs(ev({}), ctx)).toMatchObject({
      event: { type: ['connection', 'start'] },
      destination: { ip: '203.0.113.10', port: 443, nat: { ip: '198.51.100.8', port: 8443 } },
      network: { transport: 'tcp', iana_number: '6', type: 'ipv4' },
    });
    expect((eventToEcs(ev({ event: 'destroy' }), ctx).event as { type: string[] }).type).toEqual(['connection', 'end']);
    const icmp6 = eventToEcs(ev({ proto: 'icmpv6', family: 'ipv6', nat: null, orig: { src: '2001:db8::5', dst: '2001:db8:1::8', sport: 77, dport: 0 } }), ctx);
    expect(icmp6.network).toEqual({ transport: 'ipv6-icmp', iana_number: '58', type: 'ipv6' });
    expect(icmp6.source).toEqual({ ip: '2001:db8::5' });
    expect(icmp6.destination).toEqual({ ip: '2001:db8:1::8' });
    expect(icmp6.natwatch).toMatchObject({ icmp_id: 77 });
  });

  it('NFLOG: rule.name is the trimmed prefix; denied only when the rule drops or rejects, else info', () => {
    const pkt: NflogEvent = {
      type: 'event', source: 'nflog', netns: null, ts: new Date(TS).toISOString(), group: 5, prefix: 'blocked-9999 ', family: 'ipv4', proto: 'tcp',
      src: '192.0.2.5', dst: '198.51.100.8', sport: 40000, dport: 9999, indev: 'r-in', outdev: null, hook: 1, mark: 0, len: 60,
    };
    const asked: Array<[number, string]> = [];
    const verdicts: Array<boolean | null> = [true, false, null];
    for (const v of verdicts) {
      const doc = eventToEcs(pkt, ecsContext({ nflogDenies: (g, p) => (asked.push([g, p]), v) }));
      expect(doc).toMatchObject({ rule: { name: 'blocked-9999' }, event: { type: [v === true ? 'denied' : 'info'] }, observer: { ingress: { interface: { name: 'r-in' } } } });
      expect(ecsProblems(doc)).toEqual([]);
    }
    expect(asked).toEqual([[5, 'blocked-9999 '], [5, 'blocked-9999 '], [5, 'blocked-9999 ']]);
  });

  it('one event.id per episode: firing, re-sends and resolved share it; the next episode gets a new one', () => {
    const ctx = ecsContext();
    const s = new FakeStreamer();
    const ids: string[] = [];
    s.on('alert', (a) => ids.push((alertToEcs(a, ctx).event as { id: string }).id));
    s.emitAlert({ severity: 'warning' });
    s.emitAlert({ severity: 'critical' });
    s.emitAlert({ state: 'resolved' });
    s.emitAlert({ severity: 'warning' });
    s.emitAlert({ kind: 'conntrack_table_full', key: {} });
    expect(ids[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(ids[1]).toBe(ids[0]);
    expect(ids[2]).toBe(ids[0]);
    expect(ids[3]).not.toBe(ids[0]);
    expect(new Set(ids).size).toBe(3);
  });
});
