// sock_diag replies (inet_diag_msg) → one socket item each: family, state and the 4-tuple.
// Local port exhaustion counts sockets per (source, destination, destination port).
#include <netinet/in.h>  // before the linux/ headers
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>

#include <cstring>
#include <map>
#include <set>
#include <tuple>

#include "facts-writer.h"
#include "nlmsg-walk.h"

namespace nw {

uint32_t DecodeInetDiagMessages(uint8_t proto, const uint8_t* data, size_t len, FactsWriter& out) {
  uint32_t errors = 0;
  const bool whole = ForEachNlmsg(data, len, [&](const nlmsghdr& h, const uint8_t* msg) {
    if (h.nlmsg_type != SOCK_DIAG_BY_FAMILY) return;
    if (h.nlmsg_len < NLMSG_HDRLEN + sizeof(inet_diag_msg)) {
      errors++;
      return;
    }
    inet_diag_msg m;
    std::memcpy(&m, msg + NLMSG_HDRLEN, sizeof(m));
    if (m.idiag_family != AF_INET && m.idiag_family != AF_INET6) return;
    const size_t alen = m.idiag_family == AF_INET ? 4 : 16;
    uint8_t src[16] = {}, dst[16] = {};
    std::memcpy(src, m.id.idiag_src, alen);
    std::memcpy(dst, m.id.idiag_dst, alen);
    out.Begin(kItemSock);
    out.U8(m.idiag_family == AF_INET ? 4 : 6);
    out.U8(proto);
    out.U8(m.idiag_state);
    out.U8(0);
    out.U16(uint16_t((uint16_t(m.id.idiag_sport) >> 8) | (uint16_t(m.id.idiag_sport) << 8)));
    out.U16(uint16_t((uint16_t(m.id.idiag_dport) >> 8) | (uint16_t(m.id.idiag_dport) << 8)));
    out.Raw(src, 16);
    out.Raw(dst, 16);
    out.End();
  });
  return errors + (whole ? 0 : 1);
}

void CountSockets(const uint8_t* items, size_t len, FactsWriter& out) {
  constexpr uint8_t kTcpListen = 10;  // include/net/tcp_states.h
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  using Key = std::tuple<uint8_t, uint8_t, uint16_t, std::string, std::string>;
  std::map<Key, uint32_t> counts;
  // A connection accepted by a listener uses the listener's port, not an ephemeral one: a
  // server's inbound connections are not local port users (and would make a key per client).
  std::set<uint16_t> listening;
  for (int pass = 0; pass < 2; pass++) {
  size_t off = 0;
  while (len - off >= 4) {
    uint16_t type, ilen;
    std::memcpy(&type, items + off, 2);
    std::memcpy(&ilen, items + off + 2, 2);
    if (ilen > len - off - 4) break;
    const uint8_t* p = items + off + 4;
    off += 4 + ilen + (4 - ilen % 4) % 4;
    if (off > len) off = len;
    if (type != kItemSock || ilen < 40) continue;
    uint8_t family = p[0];
    const uint8_t proto = p[1];
    uint16_t sport, dport;
    std::memcpy(&sport, p + 4, 2);
    std::memcpy(&dport, p + 6, 2);
    if (pass == 0) {
      if (proto == IPPROTO_TCP && p[2] == kTcpListen) listening.insert(sport);
      continue;
    }
    if (proto == IPPROTO_TCP && listening.count(sport)) continue;
    const uint8_t* src = p + 8;
    const uint8_t* dst = p + 24;
    if (dport == 0 || (proto == IPPROTO_TCP && p[2] == kTcpListen)) continue;
    size_t alen = family == 4 ? 4 : 16;
    if (family == 6 && std::memcmp(src, kMapped, 12) == 0 && std::memcmp(dst, kMapped, 12) == 0) {
      family = 4;
      src += 12;
      dst += 12;
      alen = 4;
    }
    static const uint8_t kZero[16] = {};
    if (std::memcmp(dst, kZero, alen) == 0) continue;  // unconnected UDP
    counts[Key(family, proto, dport, std::string(reinterpret_cast<const char*>(src), alen),
               std::string(reinterpret_cast<const char*>(dst), alen))]++;
  }
  }
  for (const auto& [k, n] : counts) {
    uint8_t a[16] = {}, b[16] = {};
    std::memcpy(a, std::get<3>(k).data(), std::get<3>(k).size());
    std::memcpy(b, std::get<4>(k).data(), std::get<4>(k).size());
    out.Begin(kItemSockCount);
    out.U8(std::get<0>(k));
    out.U8(std::get<1>(k));
    out.U16(std::get<2>(k));
    out.U32(n);
    out.Raw(a, 16);
    out.Raw(b, 16);
    out.End();
  }
}

}  // namespace nw
