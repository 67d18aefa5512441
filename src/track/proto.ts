// IP protocol numbers (include/uapi/linux/in.h: IPPROTO_*) and their conntrack names.
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_DCCP = 33;
export const IPPROTO_ICMPV6 = 58;
export const IPPROTO_SCTP = 132;
export const IPPROTO_UDPLITE = 136;

const NAMES: Record<number, string> = {
  [IPPROTO_ICMP]: 'icmp',
  [IPPROTO_TCP]: 'tcp',
  [IPPROTO_UDP]: 'udp',
  [IPPROTO_DCCP]: 'dccp',
  [IPPROTO_ICMPV6]: 'icmpv6',
  [IPPROTO_SCTP]: 'sctp',
  [IPPROTO_UDPLITE]: 'udplite',
};

export const protoName = (p: number): string => NAMES[p] ?? String(p);

/** Protocols whose NAT/local capacity is a port range (ICMP ids are not tracked as ports). */
export const hasPorts = (p: number): boolean =>
  p === IPPROTO_TCP || p === IPPROTO_UDP || p === IPPROTO_SCTP || p === IPPROTO_DCCP || p === IPPROTO_UDPLITE;
