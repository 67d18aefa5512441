// The host's own connections per local key, from a sock_diag dump of the namespace: TCP sockets
// in every state but LISTEN (TIME_WAIT holds its port too) and connected UDP sockets, counted
// by the addon per (protocol, source address, destination address, destination port), so that
// 100k sockets cost JavaScript a few keys, not 100k objects. This is what
// local_port_exhaustion counts where conntrack does not track local flows (a namespace without
// a stateful rule); conntrack stays the source for NAT.
import { Occupancy } from '../track/occupancy.js';
import type { SocketCount } from './facts-codec.js';
import { readKernelFacts } from './ruleset.js';

/** Local key string (Occupancy.keyString, local) → sockets. The addon already left out
 *  listeners, unconnected UDP and mapped IPv4 (native/diag-decoder.cc CountSockets). */
export function localSocketKeys(counts: readonly SocketCount[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const c of counts) {
    const k = Occupancy.keyString(c.proto, c.src, c.dst, c.dport, true);
    out.set(k, (out.get(k) ?? 0) + c.count);
  }
  return out;
}

export async function readLocalSockets(netns: string | null): Promise<Map<string, number>> {
  const f = await readKernelFacts(netns, { diag: true });
  if (f.errors.length) throw new Error(`sock_diag: ${f.errors.map((e) => `${e.what} errno ${e.errno}`).join(', ')}`);
  return localSocketKeys(f.socketCounts);
}
