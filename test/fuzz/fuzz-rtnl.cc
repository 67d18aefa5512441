// libFuzzer target: rtnetlink RTM_NEWLINK / RTM_NEWADDR dump replies through DecodeRtnlMessages
// into link and address items, the framing checked after each input.
// Seeds: test/fixtures/facts-raw-rtnl.hex (captured with kernelFacts({raw: true})).
#include "facts-common.h"

using namespace nw;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::ExactCopy in(data, size);
  FactsWriter w;
  DecodeRtnlMessages(in.data(), in.size(), w);
  fuzz::CheckItems(w);
  return 0;
}
