// sock_diag replies (inet_diag_msg) → one socket item each: family, state and the 4-tuple.
// Local port exhaustion counts sockets per (source, destination, destination port).
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>

#include <cstring>

#include "facts-writer.h"

namespace nw {

uint32_t DecodeInetDiagMessages(uint8_t proto, const uint8_t* data, size_t len, FactsWriter& out) {
  uint32_t errors = 0;
  size_t off = 0;
  while (len - off >= NLMSG_HDRLEN) {
    nlmsghdr h;
    std::memcpy(&h, data + off, sizeof(h));
    if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > len - off) {
      errors++;
      break;
    }
    const uint8_t* msg = data + off;
    size_t step = NLMSG_ALIGN(h.nlmsg_len);
    off = step > len - off ? len : off + step;
    if (h.nlmsg_type != SOCK_DIAG_BY_FAMILY) continue;
    if (h.nlmsg_len < NLMSG_HDRLEN + sizeof(inet_diag_msg)) {
      errors++;
      continue;
    }
    inet_diag_msg m;
    std::memcpy(&m, msg + NLMSG_HDRLEN, sizeof(m));
    if (m.idiag_family != AF_INET && m.idiag_family != AF_INET6) continue;
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
  }
  return errors;
}

}  // namespace nw
