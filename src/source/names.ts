// Names the kernel's numbers go by in conntrack's own output: IP protocols
// (include/uapi/linux/in.h: IPPROTO_*), TCP conntrack states, NAT status bits.
import { IPS_DST_NAT, IPS_SRC_NAT } from './types.js';

export const IPPROTO_ICMP = 1;
export const IPPROTO_IGMP = 2;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_DCCP = 33;
export const IPPROTO_IPV6 = 41;
export const IPPROTO_GRE = 47;
export const IPPROTO_ESP = 50;
export const IPPROTO_AH = 51;
export const IPPROTO_ICMPV6 = 58;
export const IPPROTO_SCTP = 132;
export const IPPROTO_UDPLITE = 136;

const PROTO_NAMES: Record<number, string> = {
  [IPPROTO_ICMP]: 'icmp', [IPPROTO_IGMP]: 'igmp', [IPPROTO_TCP]: 'tcp', [IPPROTO_UDP]: 'udp',
  [IPPROTO_DCCP]: 'dccp', [IPPROTO_IPV6]: 'ipv6', [IPPROTO_GRE]: 'gre', [IPPROTO_ESP]: 'esp',
  [IPPROTO_AH]: 'ah', [IPPROTO_ICMPV6]: 'icmpv6', [IPPROTO_SCTP]: 'sctp', [IPPROTO_UDPLITE]: 'udplite',
};
export const protoName = (p: number): string => PROTO_NAMES[p] ?? String(p);

/** Protocols whose NAT/local capacity is a port range (ICMP ids are not tracked as ports). */
export const hasPorts = (p: number): boolean =>
  p === IPPROTO_TCP || p === IPPROTO_UDP || p === IPPROTO_SCTP || p === IPPROTO_DCCP || p === IPPROTO_UDPLITE;

/** linux/netfilter/nf_conntrack_tcp.h: enum tcp_conntrack, in order (LISTEN is SYN_SENT2). */
export const TCP_STATES = [
  'NONE', 'SYN_SENT', 'SYN_RECV', 'ESTABLISHED', 'FIN_WAIT', 'CLOSE_WAIT', 'LAST_ACK', 'TIME_WAIT', 'CLOSE', 'SYN_SENT2',
] as const;
export const tcpStateName = (s: number): string | null => (s < 0 ? null : (TCP_STATES[s] ?? String(s)));

export function natOf(status: number): 'snat' | 'dnat' | 'both' | null {
  const s = (status & IPS_SRC_NAT) !== 0;
  const d = (status & IPS_DST_NAT) !== 0;
  return s && d ? 'both' : s ? 'snat' : d ? 'dnat' : null;
}
