// NFULNL_MSG_PACKET → NFLOG record: metadata attributes from linux/netfilter/nfnetlink_log.h,
// addresses/ports from the copied packet's IPv4/IPv6 + TCP/UDP/SCTP headers.
#include <arpa/inet.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <netinet/icmp6.h>    // ICMP6_ECHO_REQUEST, ICMP6_ECHO_REPLY
#include <netinet/in.h>
#include <netinet/ip.h>       // IP_OFFMASK
#include <netinet/ip_icmp.h>  // ICMP_ECHO, ICMP_ECHOREPLY

#include <cstddef>
#include <cstring>

#include "attr-reader.h"
#include "batch-layout.h"
#include "decode.h"

namespace nw {
namespace {

inline uint16_t Be16At(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

bool HasPorts(uint8_t proto) {
  return proto == IPPROTO_TCP || proto == IPPROTO_UDP || proto == IPPROTO_SCTP ||
         proto == IPPROTO_UDPLITE || proto == IPPROTO_DCCP;
}

void L4(uint8_t proto, const uint8_t* l4, size_t n, uint8_t* rec) {
  if (HasPorts(proto) && n >= 4) {
    Put<uint16_t>(rec, kNlSport, Be16At(l4));
    Put<uint16_t>(rec, kNlDport, Be16At(l4 + 2));
  } else if ((proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) && n >= 8) {
    // Echo request/reply id, as conntrack keys ICMP by it.
    uint8_t t = l4[0];
    if (t == ICMP_ECHO || t == ICMP_ECHOREPLY || t == ICMP6_ECHO_REQUEST || t == ICMP6_ECHO_REPLY) {
      Put<uint16_t>(rec, kNlSport, Be16At(l4 + 4));
      Put<uint16_t>(rec, kNlDport, Be16At(l4 + 4));
    }
  }
}

// Parses what the copy range gave us; a short copy leaves the remaining fields zero.
void Packet(const uint8_t* p, size_t n, uint8_t* rec) {
  if (n < 1) return;
  uint8_t version = p[0] >> 4;
  if (version == 4 && n >= 20) {
    size_t ihl = size_t(p[0] & 0x0f) * 4;
    Put<uint8_t>(rec, kNlFamily, 4);
    Put<uint32_t>(rec, kNlLen, Be16At(p + 2));
    Put<uint8_t>(rec, kNlProto, p[9]);
    std::memcpy(rec + kNlSrc, p + 12, 4);
    std::memcpy(rec + kNlDst, p + 16, 4);
    bool first_fragment = (Be16At(p + 6) & IP_OFFMASK) == 0;
    if (ihl >= 20 && ihl <= n && first_fragment) L4(p[9], p + ihl, n - ihl, rec);
  } else if (version == 6 && n >= 40) {
    Put<uint8_t>(rec, kNlFamily, 6);
    Put<uint32_t>(rec, kNlLen, 40u + Be16At(p + 4));
    std::memcpy(rec + kNlSrc, p + 8, 16);
    std::memcpy(rec + kNlDst, p + 24, 16);
    uint8_t next = p[6];
    size_t off = 40;
    // Skip a bounded number of extension headers (hop-by-hop, routing, dest opts, fragment).
    for (int i = 0; i < 8; i++) {
      if (next == IPPROTO_HOPOPTS || next == IPPROTO_ROUTING || next == IPPROTO_DSTOPTS) {
        if (n - off < 8) break;
        uint8_t nh = p[off];
        off += (size_t(p[off + 1]) + 1) * 8;
        next = nh;
        if (off > n) break;
      } else if (next == IPPROTO_FRAGMENT) {
        if (n - off < 8) break;
        uint8_t nh = p[off];
        bool first = (Be16At(p + off + 2) & 0xfff8) == 0;  // ip6f_offlg's offset bits
        off += 8;
        next = nh;
        if (!first) {
          off = n + 1;  // no L4 header in a later fragment
          break;
        }
      } else {
        break;
      }
    }
    Put<uint8_t>(rec, kNlProto, next);
    if (off <= n) L4(next, p + off, n - off, rec);
  }
}

}  // namespace

bool DecodeNflog(const nlmsghdr* nlh, double ts_ms, uint8_t* rec, DecodeCounters& c) {
  if (nlh->nlmsg_len < kNfMsgHdrLen || (nlh->nlmsg_type & 0xff) != NFULNL_MSG_PACKET) {
    c.errors++;
    return false;
  }
  const nfgenmsg* g = reinterpret_cast<const nfgenmsg*>(reinterpret_cast<const uint8_t*>(nlh) +
                                                        NLMSG_HDRLEN);
  ZeroRecord<kNlRecordSize>(rec);
  Put<double>(rec, kNlTs, ts_ms);
  Put<uint16_t>(rec, kNlGroup, ntohs(g->res_id));
  uint8_t flags = 0;
  AttrReader a(reinterpret_cast<const uint8_t*>(nlh) + kNfMsgHdrLen, nlh->nlmsg_len - kNfMsgHdrLen);
  while (a.Next()) {
    switch (a.Type()) {
      case NFULA_PACKET_HDR:
        if (a.Len() != sizeof(nfulnl_msg_packet_hdr)) {
          a.Fail();
          break;
        }
        Put<uint8_t>(rec, kNlHook, a.Data()[offsetof(nfulnl_msg_packet_hdr, hook)]);
        break;
      case NFULA_MARK: Put<uint32_t>(rec, kNlMark, a.Be32()); break;
      case NFULA_IFINDEX_INDEV:
        Put<uint32_t>(rec, kNlIndex, a.Be32());
        flags |= kNlFlagIndev;
        break;
      case NFULA_IFINDEX_OUTDEV:
        Put<uint32_t>(rec, kNlOutdex, a.Be32());
        flags |= kNlFlagOutdev;
        break;
      case NFULA_PAYLOAD: Packet(a.Data(), a.Len(), rec); break;
      case NFULA_PREFIX: {
        // NUL-terminated in practice; stop at the first NUL, clamp to the field.
        size_t n = strnlen(reinterpret_cast<const char*>(a.Data()), a.Len());
        if (n > kNlPrefixMax) n = kNlPrefixMax;
        std::memcpy(rec + kNlPrefix, a.Data(), n);
        Put<uint8_t>(rec, kNlPrefixLen, static_cast<uint8_t>(n));
        break;
      }
      case NFULA_SEQ:
        Put<uint32_t>(rec, kNlSeq, a.Be32());
        flags |= kNlFlagSeq;
        break;
      case NFULA_TIMESTAMP:
      case NFULA_IFINDEX_PHYSINDEV:
      case NFULA_IFINDEX_PHYSOUTDEV:
      case NFULA_HWADDR:
      case NFULA_UID:
      case NFULA_GID:
      case NFULA_SEQ_GLOBAL:
      case NFULA_HWTYPE:
      case NFULA_HWHEADER:
      case NFULA_HWLEN:
      case NFULA_CT:
      case NFULA_CT_INFO:
      case NFULA_VLAN:
      case NFULA_L2HDR:
        break;  // known, not needed downstream
      default: c.unknown++;
    }
  }
  if (a.Failed()) {
    c.errors++;
    return false;
  }
  if (rec[kNlFamily] == 0) {
    // No usable payload: fall back to the message's family.
    rec[kNlFamily] = FamilyOf(g->nfgen_family);
  }
  rec[kNlFlags] = flags;
  return true;
}

}  // namespace nw
