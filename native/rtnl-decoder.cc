// rtnetlink dump replies → interface names (RTM_NEWLINK, IFLA_IFNAME) and addresses
// (RTM_NEWADDR: IFA_LOCAL, else IFA_ADDRESS; on point-to-point links IFA_ADDRESS is the peer).
#include <linux/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <cstring>

#include "attr-reader.h"
#include "facts-writer.h"
#include "nlmsg-walk.h"

namespace nw {
namespace {

bool Link(const uint8_t* msg, size_t mlen, FactsWriter& w) {
  const size_t hdr = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(ifinfomsg));
  if (mlen < hdr) return false;
  ifinfomsg ifi;
  std::memcpy(&ifi, msg + NLMSG_HDRLEN, sizeof(ifi));
  AttrReader a(msg + hdr, mlen - hdr);
  while (a.Next()) {
    if (a.Type() != IFLA_IFNAME) continue;
    w.Begin(kItemLink);
    w.U32(uint32_t(ifi.ifi_index));
    w.Str(reinterpret_cast<const char*>(a.Data()), a.Len() < IFNAMSIZ ? a.Len() : IFNAMSIZ);
    w.End();
  }
  return !a.Failed();
}

bool Addr(const uint8_t* msg, size_t mlen, FactsWriter& w) {
  const size_t hdr = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(ifaddrmsg));
  if (mlen < hdr) return false;
  ifaddrmsg ifa;
  std::memcpy(&ifa, msg + NLMSG_HDRLEN, sizeof(ifa));
  if (ifa.ifa_family != AF_INET && ifa.ifa_family != AF_INET6) return true;
  const size_t alen = ifa.ifa_family == AF_INET ? 4 : 16;
  const uint8_t *local = nullptr, *address = nullptr;
  AttrReader a(msg + hdr, mlen - hdr);
  while (a.Next()) {
    if (a.Type() == IFA_LOCAL && a.Len() == alen) local = a.Data();
    else if (a.Type() == IFA_ADDRESS && a.Len() == alen) address = a.Data();
  }
  if (a.Failed()) return false;
  const uint8_t* addr = local ? local : address;
  if (!addr) return true;
  w.Begin(kItemAddr);
  w.U32(ifa.ifa_index);
  w.U8(ifa.ifa_family == AF_INET ? 4 : 6);
  w.U8(ifa.ifa_prefixlen);
  w.U8(ifa.ifa_scope);
  w.U8(0);
  uint8_t out[16] = {};
  std::memcpy(out, addr, alen);
  w.Raw(out, 16);
  w.End();
  return true;
}

}  // namespace

uint32_t DecodeRtnlMessages(const uint8_t* data, size_t len, FactsWriter& out) {
  uint32_t errors = 0;
  const bool whole = ForEachNlmsg(data, len, [&](const nlmsghdr& h, const uint8_t* msg) {
    bool ok = true;
    if (h.nlmsg_type == RTM_NEWLINK) ok = Link(msg, h.nlmsg_len, out);
    else if (h.nlmsg_type == RTM_NEWADDR) ok = Addr(msg, h.nlmsg_len, out);
    if (!ok) errors++;
  });
  return errors + (whole ? 0 : 1);
}

}  // namespace nw
