import { afterAll, beforeAll, expect, it } from 'vitest';
import { ADDR, createLab, run, type Lab } from '../../src/lab/topology.js';
import { describeLive } from '../helpers/gate.js';

describeLive('lab topology (root: creates namespaces)', () => {
  let lab: Lab;
  beforeAll(async () => {
    lab = await createLab({ prefix: 'nwt', ipv6: true });
  });
  afterAll(async () => {
    await lab?.destroy();
  });

  it('routes client traffic through a masquerading router to the server', async () => {
    await lab.nft(lab.router, `table ip nat { chain post { type nat hook postrouting priority 100; oifname "r-out" meta l4proto { tcp, udp } masquerade to :50000-50009; }; }`);
    const srv = lab.spawnPeer(lab.server, ['serve', '--proto', 'tcp', '--port', '80']);
    await srv.ready;
    const res = await lab.runPeer(lab.client, ['connect', '--proto', 'tcp', '--to', `${ADDR.server}:80`, '--count', '3', '--hold-ms', '500']);
    expect(res).toEqual({ ok: 3, failed: 0 });
    const ct = await lab.exec(lab.router, 'conntrack', ['-L', '-p', 'tcp']);
    // The reply tuple shows the NAT'd source: the server answers the router's outside address.
    expect(ct.stdout).toMatch(new RegExp(`dst=${ADDR.routerOut.replace(/\./g, '\\.')} sport=80 dport=5000\\d`));
  });

  it('carries IPv6 when asked', async () => {
    const srv = lab.spawnPeer(lab.server, ['serve', '--proto', 'udp', '--port', '53']);
    await srv.ready;
    const res = await lab.runPeer(lab.client, ['connect', '--proto', 'udp', '--to', `[${ADDR.server6}]:53`, '--count', '2']);
    expect(res).toEqual({ ok: 2, failed: 0 });
  });

  it('removes every namespace it made', async () => {
    const extra = await createLab({ prefix: 'nwt' });
    await extra.destroy();
    const list = await run('ip', ['netns', 'list']);
    for (const ns of [extra.client, extra.router, extra.server]) expect(list.stdout).not.toContain(ns);
  });
});
