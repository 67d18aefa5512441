// End to end with a real Alertmanager: `natwatch serve --alertmanager URL --instance NAME` on a
// lab router whose 10 NAT ports run out. The alert must be active in Alertmanager with the
// contract's labels and annotations, then no longer active once the connections are released.
import { afterEach, expect, it } from 'vitest';
import { describeLive } from '../helpers/gate.js';
import { ADDR, type Lab } from '../../src/lab/topology.js';
import { reapWhile } from '../../src/lab/scenarios/kernel.js';
import { fastClose } from '../../src/lab/scenarios/port-exhaustion.js';
import { holdConnect } from '../../src/lab/scenarios/traffic.js';
import type { Load } from '../../src/lab/scenarios/types.js';
import { natLab } from '../helpers/nat-lab.js';
import { watchRouter } from '../helpers/serve.js';
import { ALERTMANAGER_BIN, startAlertmanager, type AlertmanagerHandle, type AmAlertState } from '../helpers/alertmanager.js';

async function poll<T>(what: string, fn: () => Promise<T | null>, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== null) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describeLive('e2e Alertmanager push', () => {
  let lab: Lab | undefined;
  let load: Load | undefined;
  let watcher: Awaited<ReturnType<typeof watchRouter>> | undefined;
  let am: AlertmanagerHandle | undefined;
  afterEach(async () => {
    await load?.release();
    await watcher?.stop();
    await lab?.destroy();
    await am?.stop();
    lab = load = watcher = am = undefined;
  });

  it('NAT exhaustion is active in Alertmanager with the contract labels, then not after recovery', async () => {
    am = await startAlertmanager();
    lab = await natLab('nwa');
    // Short TCP close timeouts in R (its own namespace's sysctls) so released ports free promptly.
    await fastClose(lab, lab.router);
    watcher = await watchRouter(lab.nsPath(lab.router), {}, { args: ['--alertmanager', am.url, '--instance', 'lab-gw'] });
    load = await holdConnect(lab, lab.client, { proto: 'tcp', to: `${ADDR.server}:80`, count: 15, timeoutMs: 2000, holdMs: 60_000 });
    expect(load.ok).toBe(10);

    const match = { alertname: 'NatPortExhaustion', dst_port: '80' };
    const active = await poll<AmAlertState>('the alert in Alertmanager', async () => (await am!.alerts(match)).find((a) => a.labels.severity === 'critical') ?? null, 20_000);
    expect(active.labels).toEqual({
      alertname: 'NatPortExhaustion',
      kind: 'nat_port_exhaustion',
      severity: 'critical',
      instance: 'lab-gw',
      netns: lab.router,
      proto: 'tcp',
      nat_ip: ADDR.routerOut,
      dst_ip: ADDR.server,
      dst_port: '80',
    });
    expect(active.status.state).toBe('active');
    expect(active.annotations).toMatchObject({ used: '10', capacity: '10' });
    expect(active.annotations.summary).toContain(`${ADDR.server}:80`);
    expect(Number(active.annotations.drops)).toBeGreaterThanOrEqual(0);
    // The stream's alert and Alertmanager's agree on when it started.
    const fired = watcher.ws.alerts().find((a) => a.kind === 'nat_port_exhaustion' && a.state === 'firing')!;
    expect(Date.parse(active.startsAt)).toBeLessThanOrEqual(Date.parse(fired.ts));
    expect(Date.parse(active.endsAt)).toBeGreaterThan(Date.now() + 60_000);

    await load.release();
    await reapWhile(lab, lab.router, watcher.ws.waitFor((m) => m.type === 'alert' && m.kind === 'nat_port_exhaustion' && m.state === 'resolved', 30_000, 'resolved'));
    await poll('the alert to leave Alertmanager', async () => ((await am!.alerts(match)).length === 0 ? true : null), 15_000);
  });
}, { also: ALERTMANAGER_BIN ? null : 'prometheus-alertmanager not installed (Debian package prometheus-alertmanager)' });
