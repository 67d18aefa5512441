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
  return { groups: parseNfnetlinkLog(t['netfilter/nfnetlink_log'] ?? ''), inodes: parseNetlinkInodes(t.netlink ?? '') };
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

const NETLINK_NETFILTER = '12'; // linux/netlink.h

/** /proc/net/netlink → NETLINK_NETFILTER port id → socket inode. */
export function parseNetlinkInodes(text: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const line of text.split('\n').slice(1)) {
    // sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
    const c = line.trim().split(/\s+/);
    if (c.length >= 10 && c[1] === NETLINK_NETFILTER) out.set(Number(c[2]), Number(c[9]));
  }
  return out;
}
