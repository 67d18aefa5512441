// Message decoders: one netlink message in, one fixed-width record (batch-layout.h) out.
// They never allocate and never read past the message; malformed input only bumps counters.
#pragma once
#include <linux/netlink.h>
#include <cstddef>
#include <cstdint>

namespace nw {

struct DecodeCounters {
  uint32_t errors = 0;   // malformed messages or attributes
  uint32_t unknown = 0;  // well-formed attributes this decoder does not know (newer kernels)
};

/** Conntrack event or dump message → record; false (and counted) when malformed. */
bool DecodeConntrack(const nlmsghdr* nlh, bool dump, double ts_ms, uint8_t* rec,
                     DecodeCounters& c);

/** NFULNL_MSG_PACKET → record (ifindex only; names are filled by the caller). */
bool DecodeNflog(const nlmsghdr* nlh, double ts_ms, uint8_t* rec, DecodeCounters& c);

/** IPCTNL_MSG_CT_GET_STATS_CPU reply: adds one CPU's counters into the stats record. */
bool AddStatsCpu(const nlmsghdr* nlh, uint8_t* rec, DecodeCounters& c);
/** IPCTNL_MSG_CT_GET_STATS reply: stores the global entry count into the stats record. */
bool SetStatsGlobal(const nlmsghdr* nlh, uint8_t* rec, DecodeCounters& c);

/**
 * Walks the netlink messages of one datagram, calling fn(const nlmsghdr*) for each well-formed
 * one; a truncated or oversized header stops the walk and counts one error.
 */
template <typename Fn>
void WalkDatagram(const uint8_t* buf, size_t n, DecodeCounters& c, Fn&& fn) {
  size_t off = 0;
  while (n - off >= NLMSG_HDRLEN) {
    const nlmsghdr* nlh = reinterpret_cast<const nlmsghdr*>(buf + off);
    if (nlh->nlmsg_len < NLMSG_HDRLEN || nlh->nlmsg_len > n - off) {
      c.errors++;
      return;
    }
    if (!fn(nlh)) return;
    size_t step = NLMSG_ALIGN(nlh->nlmsg_len);
    if (step > n - off) return;
    off += step;
  }
  if (off != n) c.errors++;
}

}  // namespace nw
