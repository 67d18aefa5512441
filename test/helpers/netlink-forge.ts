// A process that is not the kernel writing to natwatch's netlink sockets: finds this process's
// NETLINK_NETFILTER sockets in a namespace (/proc/net/netlink rows whose inode is one of our
// fds) and sends them a datagram from a second netlink socket in that namespace (Python: Node
// has no AF_NETLINK).
import { readdirSync, readlinkSync } from 'node:fs';
import type { Lab } from '../../src/lab/topology.js';
import { netlinkSockets, type NetlinkSocket } from '../../src/lab/scenarios/loss.js';
import { NETLINK_NETFILTER } from '../../src/source/nflog-bindings.js';

/** Our NETLINK_NETFILTER sockets in namespace ns: /proc/net/netlink rows whose inode we hold. */
export async function ownNetfilterSockets(lab: Lab, ns: string): Promise<NetlinkSocket[]> {
  const inodes = new Set<number>();
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
      if (m) inodes.add(Number(m[1]));
    } catch {
      // closed meanwhile
    }
  }
  return (await netlinkSockets(lab, ns)).filter((s) => inodes.has(s.inode));
}

const FORGER = `
import socket, sys
s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, ${NETLINK_NETFILTER})
s.bind((0, 0))
data = bytes.fromhex(sys.argv[2])
for pid in sys.argv[1].split(','):
    s.sendto(data, (int(pid), 0))
print(s.getsockname()[0])
`;

/** Sends `bytes` to each port id from a fresh netlink socket in ns; returns the forger's port id. */
export async function forgeTo(lab: Lab, ns: string, portIds: number[], bytes: Buffer): Promise<number> {
  const r = await lab.exec(ns, 'python3', ['-c', FORGER, portIds.join(','), bytes.toString('hex')]);
  if (r.code !== 0) throw new Error(`netlink forger failed: ${r.stderr.trim()}`);
  return Number(r.stdout.trim());
}
