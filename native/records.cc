#include "records.h"

#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netfilter/nfnetlink_log.h>

namespace nw {

uint8_t* AppendConntrack(const nlmsghdr* nlh, bool dump, double ts_ms, BatchWriter& w,
                         DecodeCounters& c) {
  if ((nlh->nlmsg_type >> 8) != NFNL_SUBSYS_CTNETLINK) {
    if (nlh->nlmsg_type >= NLMSG_MIN_TYPE) c.unknown++;
    return nullptr;
  }
  uint8_t* rec = w.Reserve();
  if (!rec) return nullptr;
  if (!DecodeConntrack(nlh, dump, ts_ms, rec, c)) return nullptr;
  w.Commit();
  return rec;
}

uint8_t* AppendNflog(const nlmsghdr* nlh, double ts_ms, BatchWriter& w, DecodeCounters& c) {
  if ((nlh->nlmsg_type >> 8) != NFNL_SUBSYS_ULOG) {
    if (nlh->nlmsg_type >= NLMSG_MIN_TYPE) c.unknown++;
    return nullptr;
  }
  uint8_t* rec = w.Reserve();
  if (!rec) return nullptr;
  if (!DecodeNflog(nlh, ts_ms, rec, c)) return nullptr;
  w.Commit();
  return rec;
}

}  // namespace nw
