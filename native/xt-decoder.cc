// x_tables target payloads, shared by iptables-nft (nft compat `target` expressions) and the
// legacy tables: which struct a target carries depends on its name, revision and family
// (net/netfilter/xt_nat.c, xt_MASQUERADE.c, xt_REDIRECT.c, xt_NETMAP.c, xt_NFLOG.c):
//   SNAT/DNAT rev 0 and IPv4 MASQUERADE/REDIRECT/NETMAP: nf_nat_ipv4_multi_range_compat
//   SNAT/DNAT rev 1 and IPv6 MASQUERADE/REDIRECT/NETMAP:  nf_nat_range
//   SNAT/DNAT rev 2:                                        nf_nat_range2 (nf_nat_range + base)
// Fields are read at their offsets with memcpy: payloads need not be aligned.
#include <linux/netfilter.h>
#include <linux/netfilter/nf_nat.h>
#include <linux/netfilter/xt_NFLOG.h>

#include <cstddef>
#include <cstring>

#include "facts-writer.h"

namespace nw {
namespace {

uint32_t HostU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

uint16_t Be16(const uint8_t* p) { return uint16_t((p[0] << 8) | p[1]); }

void EmitNat(FactsWriter& w, uint8_t type, uint8_t nfproto, uint32_t flags, const uint8_t* amin,
             const uint8_t* amax, size_t alen, const uint8_t* pmin, const uint8_t* pmax) {
  NatItem n{};
  n.type = type;
  n.nfproto = nfproto;
  n.via_xt = 1;
  n.flags = flags;
  if (flags & NF_NAT_RANGE_MAP_IPS) {
    n.state[0] = n.state[1] = kSrcImm;
    std::memcpy(n.addr_min, amin, alen);
    std::memcpy(n.addr_max, amax, alen);
  }
  if (flags & NF_NAT_RANGE_PROTO_SPECIFIED) {
    n.state[2] = n.state[3] = kSrcImm;
    n.port_min = Be16(pmin);
    n.port_max = Be16(pmax);
  }
  w.Begin(kItemNat);
  w.Raw(&n, sizeof(n));
  w.End();
}

}  // namespace

bool DecodeXtTarget(const char* name, uint8_t rev, uint8_t nfproto, const uint8_t* info, size_t len,
                    FactsWriter& out) {
  const bool snat = std::strcmp(name, "SNAT") == 0;
  const bool dnat = std::strcmp(name, "DNAT") == 0;
  const bool masq = std::strcmp(name, "MASQUERADE") == 0;
  const bool redir = std::strcmp(name, "REDIRECT") == 0;
  const bool netmap = std::strcmp(name, "NETMAP") == 0;
  if (snat || dnat || masq || redir || netmap) {
    const uint8_t type = snat ? kNatSnat : dnat ? kNatDnat : masq ? kNatMasq : redir ? kNatRedir : kNatNetmap;
    const bool compat = (snat || dnat) ? rev == 0 : nfproto != NFPROTO_IPV6;
    if (compat) {
      // rangesize u32, then nf_nat_ipv4_range {flags, min_ip, max_ip, min, max}
      if (len < 20) return false;
      if (HostU32(info) < 1) return false;
      const uint8_t* r = info + 4;
      EmitNat(out, type, NFPROTO_IPV4, HostU32(r), r + 4, r + 8, 4, r + 12, r + 14);
      return true;
    }
    // nf_nat_range(2): flags u32, min_addr[16], max_addr[16], min_proto, max_proto
    if (len < 40) return false;
    const size_t alen = nfproto == NFPROTO_IPV4 ? 4 : 16;
    EmitNat(out, type, nfproto == NFPROTO_IPV4 ? NFPROTO_IPV4 : NFPROTO_IPV6, HostU32(info), info + 4, info + 20,
            alen, info + 36, info + 38);
    return true;
  }
  if (std::strcmp(name, "NFLOG") == 0) {
    if (len < offsetof(xt_nflog_info, prefix)) return false;
    uint16_t group;
    std::memcpy(&group, info + offsetof(xt_nflog_info, group), 2);
    out.Begin(kItemLog);
    out.U8(1);
    out.U8(0);
    out.U16(group);
    size_t plen = len - offsetof(xt_nflog_info, prefix);
    out.Str(reinterpret_cast<const char*>(info + offsetof(xt_nflog_info, prefix)), plen < 64 ? plen : 64);
    out.End();
    return true;
  }
  if (std::strcmp(name, "REJECT") == 0) {
    out.Begin(kItemVerdict);
    out.I32(kVerdictReject);
    out.End();
    return true;
  }
  return true;  // a target without NAT or logging: its name item says enough
}

}  // namespace nw
