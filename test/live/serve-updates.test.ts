// Event groups on demand, end to end: serve subscribes to conntrack NEW and DESTROY only, and
// joins the UPDATE group while a stream client asks for `event` messages. 100 full TCP
// connections (connect, hold 0.5 s, close; then the table is flushed so each one's DESTROY comes
// now rather than after TIME_WAIT) reach serve as ≈ 200 events alone and ≈ 600-800 with a consumer.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ADDR, createLab, type Lab } from '../../src/lab/topology.js';
import { startServe, type ServeHandle } from '../helpers/serve.js';
import { connectStream } from '../helpers/ws-client.js';
import { describeLive } from '../helpers/gate.js';
import { sleep, until } from '../helpers/wait.js';

const CONNECTIONS = 100;

async function received(serve: ServeHandle): Promise<number> {
  const text = await (await fetch(`${serve.url}/metrics`, { signal: AbortSignal.timeout(5_000) })).text();
  const m = /^natwatch_events_received_total\{[^}]*source="conntrack"[^}]*\} (\d+)$/m.exec(text);
  if (!m) throw new Error(`no conntrack received counter in /metrics:\n${text.slice(0, 2000)}`);
  return Number(m[1]);
}

describeLive('serve receives conntrack UPDATEs only for event consumers (root: lab NAT)', () => {
  let lab: Lab;
  let serve: ServeHandle | undefined;

  beforeAll(async () => {
    // The lab topology with a full-range masquerade: 100 connections at once to one destination
    // need more than natLab()'s 10 NAT ports.
    lab = await createLab({ prefix: 'nwu' });
    await lab.nft(lab.router, 'table ip nat { chain post { type nat hook postrouting priority 100; oifname "r-out" masquerade; }; }');
    await lab.spawnPeer(lab.server, ['serve', '--proto', 'tcp', '--port', '80']).ready;
    serve = await startServe({ netns: lab.nsPath(lab.router) });
  });
  afterAll(async () => {
    await serve?.stop();
    await lab?.destroy();
  });

  /** Events serve received for 100 connections: their NEWs, UPDATEs and (flushed) DESTROYs. */
  async function connectionsCost(): Promise<number> {
    const before = await received(serve!);
    const r = await lab.runPeer(lab.client, ['connect', '--proto', 'tcp', '--to', `${ADDR.server}:80`, '--count', String(CONNECTIONS), '--hold-ms', '500']);
    expect(r.ok).toBe(CONNECTIONS);
    await sleep(300); // the FIN exchange of the last ones
    await lab.exec(lab.router, 'conntrack', ['-F']);
    // Settled: the counter stops moving (every DESTROY is in).
    let last = -1;
    let now = await received(serve!);
    for (let i = 0; i < 50 && now !== last; i++) {
      await sleep(200);
      last = now;
      now = await received(serve!);
    }
    return now - before;
  }

  it('≈ 200 events without an event consumer, ≈ 600 with one, and the consumer gets the updates', async () => {
    const alone = await connectionsCost();
    expect(alone).toBeGreaterThanOrEqual(2 * CONNECTIONS);
    expect(alone).toBeLessThanOrEqual(2 * CONNECTIONS + 10);

    const ws = await connectStream(`${serve!.wsUrl}?types=event`);
    try {
      await ws.waitFor((m) => m.type === 'hello', 5_000, 'hello');
      await sleep(100); // the subscription is in place before the traffic
      const withConsumer = await connectionsCost();
      // NEW, DESTROY and one UPDATE per TCP state change (SYN_RECV, ESTABLISHED, FIN_WAIT,
      // CLOSE_WAIT, LAST_ACK, TIME_WAIT: 4-6 seen per connection here).
      expect(withConsumer).toBeGreaterThanOrEqual(5 * CONNECTIONS);
      expect(withConsumer).toBeLessThanOrEqual(8 * CONNECTIONS);
      const updates = () => ws.messages.filter((m) => m.type === 'event' && (m as { event?: string }).event === 'update' && (m as { orig?: { dport: number } }).orig?.dport === 80);
      await until('updates on the stream', () => updates().length >= 3 * CONNECTIONS, 10_000);
    } finally {
      await ws.close();
    }

    // The last consumer gone, serve leaves the UPDATE group again.
    await sleep(300);
    const after = await connectionsCost();
    expect(after).toBeLessThanOrEqual(2 * CONNECTIONS + 10);
  });
});
