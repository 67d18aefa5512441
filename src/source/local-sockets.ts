// The host's own connections per local key, from a sock_diag dump of the namespace: TCP sockets
// in every state but LISTEN (TIME_WAIT holds its port too) and connected UDP sockets, counted
// per (protocol, source address, destination address, destination port). This is what
// local_port_exhaustion counts where conntrack does not track local flows (a namespace without
// a stateful rule); conntrack stays the source for NAT.
import { Occupancy } from '../track/occupancy.js';
import type { SocketFacts } from './facts-codec.js';
import { IPPROTO_TCP } from './names.js';
import { readKernelFacts } from './ruleset.js';

const TCP_LISTEN = 10; // include/net/tcp_states.h

const unmapped = (a: string): string => (a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a);
const unspecified = (a: string): boolean => a === '0.0.0.0' || a === '::';

/** Local key string (Occupancy.keyString, local) → sockets. */
export function countLocalSockets(sockets: readonly SocketFacts[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of sockets) {
    if (s.dport === 0 || unspecified(s.dst) || (s.proto === IPPROTO_TCP && s.state === TCP_LISTEN)) continue;
    const k = Occupancy.keyString(s.proto, unmapped(s.src), unmapped(s.dst), s.dport, true);
    out.set(k, (out.get(k) ?? 0) + 1);
  }
  return out;
}

export async function readLocalSockets(netns: string | null): Promise<Map<string, number>> {
  const f = await readKernelFacts(netns, { diag: true });
  if (f.errors.length) throw new Error(`sock_diag: ${f.errors.map((e) => `${e.what} errno ${e.errno}`).join(', ')}`);
  return countLocalSockets(f.sockets);
}
