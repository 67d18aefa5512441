// NAT source-port exhaustion: the router masquerades to 10 ports, the client opens 15 flows to
// one server ip:port. 10 get a NAT port; the kernel drops the rest at conntrack confirm time
// (insert_failed, drop) without a log line or an ICMP — the failure natwatch exists for.
import { ADDR, type Lab } from '../topology.js';
import { deltas, formatDeltas, listEntries, snapshot } from './kernel.js';
import { holdConnect } from './traffic.js';
import type { Load, Scenario } from './types.js';

export interface PortExhaustionOptions {
  proto?: 'tcp' | 'udp';
  ipv6?: boolean;
  /** NAT port range; capacity = its size. */
  ports?: [number, number];
  /** Flows opened; more than the range size makes the kernel drop the excess. */
  flows?: number;
  dstPort?: number;
}

/** Namespace-local: closed flows leave R's table in seconds, so the alert can resolve. */
const FAST_CLOSE_SYSCTLS = [
  'net.netfilter.nf_conntrack_tcp_timeout_time_wait=1',
  'net.netfilter.nf_conntrack_tcp_timeout_close=1',
  'net.netfilter.nf_conntrack_tcp_timeout_fin_wait=1',
  'net.netfilter.nf_conntrack_tcp_timeout_close_wait=1',
  'net.netfilter.nf_conntrack_tcp_timeout_last_ack=1',
  'net.netfilter.nf_conntrack_udp_timeout=2',
  'net.netfilter.nf_conntrack_udp_timeout_stream=2',
];

export async function fastClose(lab: Lab, ns: string): Promise<void> {
  const r = await lab.exec(ns, 'sysctl', ['-qw', ...FAST_CLOSE_SYSCTLS]);
  if (r.code !== 0) throw new Error(`sysctl in ${ns}: ${r.stderr.trim()}`);
}

export function portExhaustion(o: PortExhaustionOptions = {}): Scenario {
  const proto = o.proto ?? 'tcp';
  const ipv6 = o.ipv6 ?? false;
  const [lo, hi] = o.ports ?? [50000, 50009];
  const capacity = hi - lo + 1;
  const flows = o.flows ?? capacity + 5;
  const dstPort = o.dstPort ?? (proto === 'tcp' ? 80 : 53);
  const natIp = ipv6 ? ADDR.routerOut6 : ADDR.routerOut;
  const dstIp = ipv6 ? ADDR.server6 : ADDR.server;
  const family = ipv6 ? 'ip6' : 'ip';
  const to = ipv6 ? `[${dstIp}]:${dstPort}` : `${dstIp}:${dstPort}`;

  return {
    name: 'port-exhaustion',
    title: `NAT source-port exhaustion (${proto}${ipv6 ? ', IPv6 NAT66' : ''})`,
    story:
      `R masquerades ${family === 'ip6' ? 'IPv6 ' : ''}traffic out of ${natIp} to ports ${lo}-${hi} (${capacity} ports). ` +
      `The client opens ${flows} ${proto.toUpperCase()} flows at once to ${to}: one NAT port per flow, ` +
      `so ${capacity} fit and the kernel silently drops the other ${flows - capacity}.`,
    ipv6,
    globalSysctls: {},
    watch: { natPorts: [lo, hi] },
    expect: {
      kind: 'nat_port_exhaustion',
      key: { proto, natIp, dstIp, dstPort },
      severity: 'critical',
      used: capacity,
      capacity,
      drops: true,
      resolves: 'after-release',
      flowsExpire: true,
    },
    kernelDrops: async (lab, before) => {
      const d = deltas(before, await snapshot(lab, lab.router));
      return { what: 'insert_failed', n: d.insert_failed ?? 0 };
    },
    occupancy: {
      key: { proto, natIp, dstIp, dstPort },
      count: async (lab) =>
        (await listEntries(lab, lab.router, ['-p', proto, '--dport', String(dstPort)], ipv6 ? 'ipv6' : 'ipv4')).filter(
          (e) => e.reply.dst === natIp && e.orig.dst === dstIp,
        ).length,
    },
    async setup(lab) {
      await fastClose(lab, lab.router);
      await lab.nft(
        lab.router,
        `table ${family} nwlab_nat {\n` +
          `  chain post {\n    type nat hook postrouting priority 100;\n    oifname "r-out" meta l4proto { tcp, udp } masquerade to :${lo}-${hi}\n  }\n` +
          `}\n`,
      );
      const srv = lab.spawnPeer(lab.server, ['serve', '--proto', proto, '--port', String(dstPort)]);
      await srv.ready;
    },
    trigger(lab): Promise<Load> {
      return holdConnect(lab, lab.client, { proto, to, count: flows, timeoutMs: 2_000 });
    },
    async verifyKernel(lab, before) {
      const after = await snapshot(lab, lab.router);
      const d = deltas(before, after);
      const natted = await listEntries(lab, lab.router, ['-p', proto, '--dport', String(dstPort)], ipv6 ? 'ipv6' : 'ipv4');
      const ports = natted.filter((e) => e.reply.dst === natIp).map((e) => e.reply.dport);
      const inRange = ports.filter((p) => p >= lo && p <= hi);
      if ((d.insert_failed ?? 0) === 0 && (d.drop ?? 0) === 0) {
        throw new Error(`kernel did not drop anything (counters: ${formatDeltas(d)})`);
      }
      return [
        `conntrack -S in R: ${formatDeltas(d)}`,
        `conntrack -L in R: ${ports.length} ${proto} flows to ${to} NATed to ${natIp}, ${new Set(inRange).size} distinct ports of ${capacity}`,
      ];
    },
  };
}
