// Event loss: conntrack events are lossy by design. natwatch's event socket gets a tiny receive
// buffer (8 KiB asked, ≈ a dozen events of ≈ 1280 bytes truesize) and the client creates
// 2000 UDP flows through R in a burst, ≈ 4000 NEW/UPDATE events in a fraction of a second.
// The kernel cannot queue them (the socket's Drops column in /proc/net/netlink counts them),
// recv() returns ENOBUFS, and natwatch must count exactly those events (its socket's drop
// counter, SO_MEMINFO) and rebuild its view from a table dump.
import { ADDR, type Lab } from '../topology.js';
import { deltas, formatDeltas, listEntries, snapshot } from './kernel.js';
import { holdConnect } from './traffic.js';
import type { Load, Scenario } from './types.js';
import { parseNetlinkTable, type NetlinkSocket } from '../../source/nflog-bindings.js';

export const LOSS_RCVBUF = 8192;
const FLOWS = 2000;
const PORT = 53;

export type { NetlinkSocket };

/** The NETLINK_NETFILTER sockets in `ns` (/proc/net/netlink, which is per namespace). */
export async function netlinkSockets(lab: Lab, ns: string): Promise<NetlinkSocket[]> {
  return parseNetlinkTable((await lab.exec(ns, 'cat', ['/proc/net/netlink'])).stdout);
}

/**
 * Per-socket Drops of the NETLINK_NETFILTER sockets in `ns`, keyed by port id: the kernel's
 * own count of messages it could not queue to a listener.
 */
export async function netlinkDrops(lab: Lab, ns: string): Promise<Map<number, number>> {
  return new Map((await netlinkSockets(lab, ns)).map((s) => [s.portId, s.drops]));
}

/** Entries in R for the loss scenario's destination, as the kernel lists them. */
export async function lossFlows(lab: Lab): Promise<number> {
  const e = await listEntries(lab, lab.router, ['-p', 'udp', '--dport', String(PORT)]);
  return e.filter((x) => x.orig.dst === ADDR.server && x.reply.dst === ADDR.routerOut).length;
}

export function loss(): Scenario {
  return {
    name: 'loss',
    title: 'Conntrack event loss (listener slower than the kernel)',
    story:
      `natwatch's event socket gets a ${LOSS_RCVBUF}-byte receive buffer instead of 64 MiB. ` +
      `The client opens ${FLOWS} UDP flows to ${ADDR.server}:${PORT} in one burst; R NATs them, ` +
      'and the kernel drops the events it cannot queue. natwatch must count exactly as many lost events as the kernel dropped and re-dump the table.',
    ipv6: false,
    globalSysctls: {},
    watch: { rcvbufBytes: LOSS_RCVBUF },
    expect: {
      kind: 'event_loss',
      key: {},
      severity: 'critical',
      drops: true,
      resolves: 'by-itself',
      flowsExpire: false,
      oneEpisode: true,
    },
    kernelDrops: async (lab) => ({
      what: "events the kernel could not queue to netfilter sockets in R (/proc/net/netlink Drops; only natwatch's event socket overflows, and natwatch counts these exactly)",
      n: [...(await netlinkDrops(lab, lab.router)).values()].reduce((a, b) => a + b, 0),
    }),
    occupancy: {
      key: { proto: 'udp', natIp: ADDR.routerOut, dstIp: ADDR.server, dstPort: PORT },
      count: lossFlows,
    },
    async setup(lab) {
      await lab.nft(
        lab.router,
        'table ip nwlab_nat {\n  chain post {\n    type nat hook postrouting priority 100;\n    oifname "r-out" masquerade\n  }\n}\n',
      );
      const srv = lab.spawnPeer(lab.server, ['serve', '--proto', 'udp', '--port', String(PORT)]);
      await srv.ready;
    },
    trigger(lab): Promise<Load> {
      // --every-ms keeps the flows alive (and their count stable) until released.
      // The timeout only bounds the wait for the echoes; the burst itself is as fast as before.
      // 8 s so that a busy machine (CI, shared cores) still sees every flow answered.
      return holdConnect(lab, lab.client, { proto: 'udp', to: `${ADDR.server}:${PORT}`, count: FLOWS, timeoutMs: 8_000 });
    },
    async verifyKernel(lab, before) {
      const after = await snapshot(lab, lab.router);
      const d = deltas(before, after);
      const flows = await lossFlows(lab);
      if (flows < FLOWS * 0.9) throw new Error(`expected ≈ ${FLOWS} flows in R, conntrack -L shows ${flows}`);
      const drops = [...(await netlinkDrops(lab, lab.router)).values()].reduce((a, b) => a + b, 0);
      return [
        `conntrack -S in R: ${formatDeltas(d)}; conntrack -L: ${flows} UDP flows to ${ADDR.server}:${PORT}`,
        `/proc/net/netlink in R: ${drops} events the kernel could not queue to a netfilter socket`,
      ];
    },
  };
}
