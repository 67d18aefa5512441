// ifindex → interface name in the source's namespace, through SIOCGIFNAME on a socket created
// there (what if_indextoname does, minus the per-call socket). Small, time-bounded cache:
// NFLOG traffic is low-rate but repetitive.
#pragma once
#include <net/if.h>
#include <sys/ioctl.h>

#include <cstdint>
#include <cstring>

namespace nw {

class IfnameCache {
 public:
  explicit IfnameCache(int fd) : fd_(fd) {}

  /** Copies the NUL-padded name into out[IFNAMSIZ]; false (out zeroed) when unknown. */
  bool Lookup(uint32_t ifindex, int64_t now_ms, uint8_t* out) {
    std::memset(out, 0, IFNAMSIZ);
    if (ifindex == 0 || fd_ < 0) return false;
    Entry& e = slots_[ifindex % kSlots];
    if (e.ifindex == ifindex && now_ms - e.at_ms < kTtlMs) {
      std::memcpy(out, e.name, IFNAMSIZ);
      return e.name[0] != 0;
    }
    ifreq ifr{};
    ifr.ifr_ifindex = static_cast<int>(ifindex);
    e.ifindex = ifindex;
    e.at_ms = now_ms;
    std::memset(e.name, 0, IFNAMSIZ);
    if (ioctl(fd_, SIOCGIFNAME, &ifr) == 0) {
      std::memcpy(e.name, ifr.ifr_name, IFNAMSIZ - 1);
    }
    std::memcpy(out, e.name, IFNAMSIZ);
    return e.name[0] != 0;
  }

 private:
  static constexpr int kSlots = 64;
  static constexpr int64_t kTtlMs = 10000;  // interfaces get renamed/recreated, rarely
  struct Entry {
    uint32_t ifindex = 0;
    int64_t at_ms = 0;
    char name[IFNAMSIZ] = {};
  };
  int fd_;
  Entry slots_[kSlots];
};

}  // namespace nw
