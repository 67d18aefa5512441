// libFuzzer target: sock_diag SOCK_DIAG_BY_FAMILY replies (inet_diag_msg) through
// DecodeInetDiagMessages, read as TCP and as UDP, the framing checked after each.
// Seeds: test/fixtures/facts-raw-diag-tcp.hex, facts-raw-diag-udp.hex.
#include "facts-common.h"

using namespace nw;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::ExactCopy in(data, size);
  for (uint8_t proto : {uint8_t(6), uint8_t(17)}) {
    FactsWriter w;
    DecodeInetDiagMessages(proto, in.data(), in.size(), w);
    fuzz::CheckItems(w);
  }
  return 0;
}
