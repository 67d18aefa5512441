// "I flushed the NAT rules, so conntrack is off" — it is not. R runs a typical stateful
// forward rule (ct state established,related accept: what firewalld, ufw and docker install)
// and a MASQUERADE rule, both the classic iptables way (nft backend). Flows are opened, then
// `iptables -t nat -F`. Measured on Linux 6.18: the flows from before the flush stay in R's
// table with their NAT binding and a 5-day established timeout, and every new flow is still
// tracked because the filter rule holds conntrack in the namespace. Without such a rule the
// kernel does stop tracking new flows once the last NAT rule is gone (the lab test checks both).
import { ADDR, type Lab } from '../topology.js';
import { listEntries } from './kernel.js';
import { holdConnect } from './traffic.js';
import type { Load, Scenario } from './types.js';

const BEFORE = 3;
const AFTER = 5;

async function iptables(lab: Lab, args: string[]): Promise<void> {
  const r = await lab.exec(lab.router, 'iptables', args);
  if (r.code !== 0) throw new Error(`iptables ${args.join(' ')}: ${r.stderr.trim()}`);
}

export interface FlushOptions {
  /** Keep a `ct state` filter rule (default true). False shows the kernel stop tracking. */
  statefulFilter?: boolean;
}

export function flush(o: FlushOptions = {}): Scenario {
  const stateful = o.statefulFilter ?? true;
  return {
    name: 'flush',
    title: 'NAT rules flushed, conntrack still tracking',
    story:
      `R has ${stateful ? 'a stateful forward rule (-m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT) and ' : ''}` +
      '`iptables -t nat -A POSTROUTING -o r-out -j MASQUERADE`. ' +
      `The client opens ${BEFORE} connections to ${ADDR.server}:80, then R runs \`iptables -t nat -F\` and the client opens ${AFTER} more. ` +
      'No NAT rule is left, yet the table still holds the old flows' + (stateful ? ' and tracks every new one.' : '.'),
    ipv6: false,
    globalSysctls: {},
    watch: {},
    expect: null,
    async setup(lab) {
      if (stateful) await iptables(lab, ['-A', 'FORWARD', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT']);
      await iptables(lab, ['-t', 'nat', '-A', 'POSTROUTING', '-o', 'r-out', '-j', 'MASQUERADE']);
      const srv = lab.spawnPeer(lab.server, ['serve', '--proto', 'tcp', '--port', '80']);
      await srv.ready;
    },
    async trigger(lab): Promise<Load> {
      const to = `${ADDR.server}:80`;
      const first = await holdConnect(lab, lab.client, { proto: 'tcp', to, count: BEFORE, timeoutMs: 2_000 });
      try {
        await iptables(lab, ['-t', 'nat', '-F']);
        const second = await holdConnect(lab, lab.client, { proto: 'tcp', to, count: AFTER, timeoutMs: 2_000 });
        return {
          ok: first.ok + second.ok,
          failed: first.failed + second.failed,
          summary: `${first.ok} connected before the flush, ${second.ok} after`,
          async release() {
            await Promise.all([first.release(), second.release()]);
          },
        };
      } catch (err) {
        await first.release();
        throw err;
      }
    },
    async verifyKernel(lab) {
      const rules = await lab.exec(lab.router, 'iptables', ['-t', 'nat', '-S', 'POSTROUTING']);
      const left = rules.stdout.split('\n').filter((l) => l.startsWith('-A')).length;
      const tracked = (await listEntries(lab, lab.router, ['-p', 'tcp', '--dport', '80'])).filter(
        (e) => e.orig.src === ADDR.client && e.orig.dst === ADDR.server,
      );
      const natted = tracked.filter((e) => e.reply.dst === ADDR.routerOut).length;
      const plain = tracked.length - natted;
      if (natted < BEFORE) throw new Error(`expected the ${BEFORE} NATed flows from before the flush to stay, conntrack -L shows ${natted}`);
      if (stateful && plain < AFTER) throw new Error(`expected R to track the ${AFTER} new flows, conntrack -L shows ${plain}`);
      return [
        `iptables -t nat -S POSTROUTING in R: ${left} rules left`,
        `conntrack -L in R: ${natted} NATed flows from before the flush still held, ${plain} new un-NATed flows tracked`,
      ];
    },
  };
}
