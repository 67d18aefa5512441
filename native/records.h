// Appending decoded messages to batches: the one path shared by the reader thread and
// decodeForTest, so fixtures exercise exactly what the live reader runs.
#pragma once
#include <linux/netlink.h>

#include <cstdint>

#include "batch-writer.h"
#include "decode.h"

namespace nw {

/** Conntrack message → record in w; nullptr when it is not a conntrack message or malformed. */
uint8_t* AppendConntrack(const nlmsghdr* nlh, bool dump, double ts_ms, BatchWriter& w,
                         DecodeCounters& c);

/** NFLOG packet message → record in w (interface names left empty); nullptr otherwise. */
uint8_t* AppendNflog(const nlmsghdr* nlh, double ts_ms, BatchWriter& w, DecodeCounters& c);

/** NFLOG groups one source binds at most (Source drops the rest; netlink-source.ts refuses). */
constexpr uint32_t kMaxNflogGroups = 32;

/** Per-group NFLOG sequence tracking: returns how many numbers were skipped before seq. */
class SeqTracker {
 public:
  uint32_t Gap(uint16_t group, uint32_t seq) {
    for (auto& s : slots_) {
      if (s.used && s.group == group) {
        uint32_t expect = s.last + 1;
        s.last = seq;
        // A restart (rebind) or reordering is not loss; only a forward jump is.
        uint32_t gap = seq - expect;
        return (seq > expect && gap < (1u << 30)) ? gap : 0;
      }
    }
    for (auto& s : slots_) {
      if (!s.used) {
        s = {group, seq, true};
        return 0;
      }
    }
    return 0;
  }

 private:
  struct Slot {
    uint16_t group = 0;
    uint32_t last = 0;
    bool used = false;
  };
  Slot slots_[kMaxNflogGroups];
};

}  // namespace nw
