// Real format=ecs frames from the built `natwatch serve` on a lab router (a NAT exhaustion and a
// firewall drop logged to NFLOG), every one validated against the official ECS field list.
import { afterEach, expect, it } from 'vitest';
import { describeLive } from '../helpers/gate.js';
import { hostname } from 'node:os';
import { ADDR, type Lab } from '../../src/lab/topology.js';
import { fastClose } from '../../src/lab/scenarios/port-exhaustion.js';
import { nflogDrop, GROUP } from '../../src/lab/scenarios/nflog-drop.js';
import { holdConnect } from '../../src/lab/scenarios/traffic.js';
import type { Load } from '../../src/lab/scenarios/types.js';
import { natLab } from '../helpers/nat-lab.js';
import { watchRouter } from '../helpers/serve.js';
import { connectStream, type StreamClient } from '../helpers/ws-client.js';
import { ecsProblems } from '../helpers/ecs-validate.js';

type Doc = Record<string, unknown> & { event: { kind: string; dataset: string; type?: string[]; id?: string; action?: string } };

describeLive('e2e format=ecs', () => {
  let lab: Lab | undefined;
  const loads: Load[] = [];
  let watcher: Awaited<ReturnType<typeof watchRouter>> | undefined;
  let ecs: StreamClient | undefined;
  afterEach(async () => {
    for (const l of loads.splice(0)) await l.release();
    await ecs?.close();
    await watcher?.stop();
    await lab?.destroy();
    lab = watcher = ecs = undefined;
  });

  it('every frame of a NAT exhaustion and an NFLOG drop is a valid ECS document', async () => {
    lab = await natLab('nwe');
    await fastClose(lab, lab.router);
    await nflogDrop().setup(lab);
    watcher = await watchRouter(lab.nsPath(lab.router), { nflogGroups: [GROUP] });
    ecs = await connectStream(`${watcher.serve.wsUrl}?format=ecs&types=alert,stats,event,gap`);
    const docs = ecs.messages as unknown as Doc[];
    loads.push(await holdConnect(lab, lab.client, { proto: 'tcp', to: `${ADDR.server}:80`, count: 15, timeoutMs: 2000, holdMs: 60_000 }));
    loads.push(await holdConnect(lab, lab.client, { proto: 'tcp', to: `${ADDR.server}:9999`, count: 2, timeoutMs: 1500 }));
    const has = (pred: (d: Doc) => boolean, what: string) => ecs!.waitFor((m) => pred(m as unknown as Doc), 20_000, what);
    await has((d) => d.event.kind === 'alert' && d.event.action === 'nat_port_exhaustion', 'nat alert');
    await has((d) => d.event.kind === 'alert' && d.event.action === 'nflog_drop', 'nflog alert');
    await has((d) => d.event.dataset === 'natwatch.nflog', 'nflog packet');
    await has((d) => d.event.kind === 'metric', 'stats');
    await loads.shift()!.release();
    await has((d) => d.event.dataset === 'natwatch.conntrack' && d.event.action === 'destroy', 'a destroyed connection');

    expect(docs[0]!.event).toMatchObject({ kind: 'event', dataset: 'natwatch.control', action: 'hello' });
    for (const d of docs) expect(ecsProblems(d), JSON.stringify(d)).toEqual([]);
    for (const d of docs) expect(d).toMatchObject({ host: { name: hostname() }, observer: { product: 'natwatch' }, natwatch: { netns: lab.router } });
    const nflog = docs.find((d) => d.event.dataset === 'natwatch.nflog')!;
    // The rule logging to group 5 drops: the ruleset says so, hence `denied`.
    expect(nflog).toMatchObject({ rule: { name: 'blocked-9999' }, event: { type: ['denied'] }, destination: { ip: ADDR.server, port: 9999 }, network: { transport: 'tcp', iana_number: '6' } });
    const nflogAlert = docs.find((d) => d.event.kind === 'alert' && d.event.action === 'nflog_drop')!;
    expect(nflogAlert.event.type).toEqual(['start', 'denied']);
    const started = docs.find((d) => d.event.dataset === 'natwatch.conntrack' && d.event.action === 'new')!;
    expect(started.event.type).toEqual(['connection', 'start']);
    expect(started).toMatchObject({ source: { nat: { ip: ADDR.routerOut } } });
    const ended = docs.find((d) => d.event.dataset === 'natwatch.conntrack' && d.event.action === 'destroy')!;
    expect(ended.event.type).toEqual(['connection', 'end']);
    console.log(`validated ${docs.length} ECS documents: ${[...new Set(docs.map((d) => d.event.dataset))].join(', ')}`);
  });
});
