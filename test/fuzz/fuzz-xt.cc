// libFuzzer target: an iptables-legacy table as the kernel returns it (the IPT_SO_GET_INFO fields
// valid_hooks, hook_entry[5], underflow[5] and the name, then the IPT_SO_GET_ENTRIES blob),
// decoded as an IPv4 and as an IPv6 table: the entry walk and every x_tables target payload
// (SNAT/DNAT/MASQUERADE/REDIRECT/NETMAP ranges, NFLOG, REJECT) through DecodeXtTarget.
// Seeds: test/fixtures/facts-raw-ipt-legacy-*.hex, facts-raw-ip6t-legacy.hex.
#include <cstring>

#include "facts-common.h"

using namespace nw;

namespace {

void Table(uint8_t family, const uint8_t* p, size_t n) {
  constexpr size_t kPre = 11 * 4 + 32;
  if (n < kPre) return;
  uint32_t h[11];
  std::memcpy(h, p, sizeof(h));
  char name[33] = {};
  std::memcpy(name, p + 44, 32);
  // The entries in an allocation of their own exact size: a read past the blob is a report.
  fuzz::ExactCopy blob(p + kPre, n - kPre);
  FactsWriter w;
  DecodeIptEntries(family, name, h[0], h + 1, h + 6, blob.data(), blob.size(), w);
  fuzz::CheckItems(w);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::ExactCopy in(data, size);
  Table(4, in.data(), in.size());
  Table(6, in.data(), in.size());
  return 0;
}
