// Who holds which NFLOG group in a namespace, from the kernel's own tables read inside it:
// /proc/net/netfilter/nfnetlink_log (group → holder's netlink port id) and /proc/net/netlink
// (port id → socket inode). Mapping an inode to a process is the caller's business.
import { loadNative, mapNativeError } from './native.js';

export interface NflogBindings {
  /** Bound group → port id of the socket holding it. */
  groups: Map<number, number>;
  /** NETLINK_NETFILTER port id → socket inode. */
  inodes: Map<number, number>;
}

export function readNflogBindings(netns: string | null): NflogBindings {
  let t: Record<string, string | null>;
  try {
    t = loadNative().readProcNet(netns, ['netfilter/nfnetlink_log', 'netlink']);
  } catch (err) {
    throw mapNativeError(err, netns);
  }
  // No nfnetlink_log table: the module is not loaded, so nothing is bound.
  const inodes = new Map(parseNetlinkTable(t.netlink ?? '').map((s) => [s.portId, s.inode]));
  return { groups: parseNfnetlinkLog(t['netfilter/nfnetlink_log'] ?? ''), inodes };
}

/** /proc/net/netfilter/nfnetlink_log → group → holder port id. */
export function parseNfnetlinkLog(text: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const line of text.split('\n')) {
    // group portid queue_total copy_mode copy_range flush_timeout use
    const c = line.trim().split(/\s+/);
    if (c.length >= 2 && /^\d+$/.test(c[0]!) && /^\d+$/.test(c[1]!)) out.set(Number(c[0]), Number(c[1]));
  }
  return out;
}

/** NETLINK_NETFILTER, include/uapi/linux/netlink.h */
export const NETLINK_NETFILTER = 12;

/** One NETLINK_NETFILTER socket of a namespace as /proc/net/netlink lists it. */
export interface NetlinkSocket {
  /** Port id (the Pid column). */
  portId: number;
  /** Bitmask of the first 32 multicast groups joined (group g is bit g - 1). */
  groups: number;
  /** Messages the kernel could not queue to it: the ground truth for loss. */
  drops: number;
  inode: number;
}

/** /proc/net/netlink text → its NETLINK_NETFILTER sockets. */
export function parseNetlinkTable(text: string): NetlinkSocket[] {
  const out: NetlinkSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    // sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || Number(f[1]) !== NETLINK_NETFILTER) continue;
    out.push({ portId: Number(f[2]), groups: parseInt(f[3]!, 16), drops: Number(f[8]), inode: Number(f[9]) });
  }
  return out;
}
