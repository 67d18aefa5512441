// The netlink messages packed end to end in one buffer (a dump's datagrams, or one datagram),
// for the one-shot fact decoders. Lengths are checked before a header is trusted.
#pragma once
#include <linux/netlink.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace nw {

/**
 * Calls fn(header, message) for each message; the message is header.nlmsg_len bytes long. A
 * length that does not fit ends the walk and returns false: the rest cannot be trusted.
 */
template <typename Fn>
bool ForEachNlmsg(const uint8_t* data, size_t len, Fn&& fn) {
  size_t off = 0;
  while (len - off >= NLMSG_HDRLEN) {
    nlmsghdr h;
    std::memcpy(&h, data + off, sizeof(h));
    if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > len - off) return false;
    const uint8_t* msg = data + off;
    const size_t step = NLMSG_ALIGN(h.nlmsg_len);
    off = step > len - off ? len : off + step;
    fn(h, msg);
  }
  return true;
}

}  // namespace nw
