// Message decoders: one netlink message in, one fixed-width record (batch-layout.h) out.
// They never allocate and never read past the message; malformed input only bumps counters.
#pragma once
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace nw {

/** nlmsghdr + nfgenmsg: where a netfilter message's attributes start. */
constexpr size_t kNfMsgHdrLen = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg));

/** Stores v at rec + off (records are packed: no alignment assumed). */
template <typename T>
inline void Put(uint8_t* rec, uint32_t off, T v) {
  std::memcpy(rec + off, &v, sizeof(T));
}

/**
 * Zeroes a record of N bytes. GCC expands a memset of this size into rep stos, whose start-up
 * cost was almost half of a conntrack decode (BENCHMARKS.md, "Decode (bench-decode)"); unrolled 8-byte
 * stores become a few vector stores.
 */
template <uint32_t N>
inline void ZeroRecord(uint8_t* rec) {
  static_assert(N % 8 == 0, "records are a multiple of 8 bytes");
  const uint64_t zero = 0;
#pragma GCC unroll 32
  for (uint32_t off = 0; off < N; off += 8) std::memcpy(rec + off, &zero, 8);
}

/** nfgen_family → the record's family byte: 4, 6, or 0 for anything else. */
inline uint8_t FamilyOf(uint8_t nfgen_family) {
  return nfgen_family == AF_INET ? 4 : nfgen_family == AF_INET6 ? 6 : 0;
}

struct DecodeCounters {
  uint32_t errors = 0;   // malformed messages or attributes
  uint32_t unknown = 0;  // well-formed attributes this decoder does not know (newer kernels)
};

/**
 * Conntrack event or dump message → record; false (and counted) when malformed. fixed_tuples
 * false walks every tuple's attributes instead of matching the kernel's usual IPv4 layout first:
 * the same record either way, which the fuzz target checks on every input.
 */
bool DecodeConntrack(const nlmsghdr* nlh, bool dump, double ts_ms, uint8_t* rec, DecodeCounters& c,
                     bool fixed_tuples = true);

/** NFULNL_MSG_PACKET → record (ifindex only; names are filled by the caller). */
bool DecodeNflog(const nlmsghdr* nlh, double ts_ms, uint8_t* rec, DecodeCounters& c);

/** IPCTNL_MSG_CT_GET_STATS_CPU reply: adds one CPU's counters into the stats record. */
bool AddStatsCpu(const nlmsghdr* nlh, uint8_t* rec, DecodeCounters& c);
/** IPCTNL_MSG_CT_GET_STATS reply: stores the global entry count into the stats record. */
bool SetStatsGlobal(const nlmsghdr* nlh, uint8_t* rec, DecodeCounters& c);

/**
 * True when nlh ends a dump or a request (NLMSG_DONE / NLMSG_ERROR), with *err the errno it
 * carries: 0 for a clean end or an ack. A dump that fails midway ends in NLMSG_DONE whose int
 * payload is -errno, so DONE is not always success.
 */
inline bool EndOfReply(const nlmsghdr* nlh, int* err) {
  if (nlh->nlmsg_type == NLMSG_DONE) {
    int32_t e = 0;
    if (nlh->nlmsg_len >= NLMSG_HDRLEN + sizeof(e)) std::memcpy(&e, NLMSG_DATA(nlh), sizeof(e));
    *err = e >= 0 ? 0 : e == INT32_MIN ? EPROTO : -e;
    return true;
  }
  if (nlh->nlmsg_type == NLMSG_ERROR) {
    nlmsgerr e;
    if (nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(e)) {
      *err = EPROTO;
    } else {
      std::memcpy(&e, NLMSG_DATA(nlh), sizeof(e));
      *err = e.error >= 0 ? 0 : e.error == INT32_MIN ? EPROTO : -e.error;
    }
    return true;
  }
  return false;
}

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
