// libFuzzer target: nf_tables dump replies (tables, chains, rules with their expressions, set
// elements) through DecodeNftMessages into kernel-facts items, the framing checked after each
// input. Seeds: test/fixtures/facts-raw-nft.hex (captured with kernelFacts({raw: true})).
#include "facts-common.h"

using namespace nw;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::ExactCopy in(data, size);
  FactsWriter w;
  DecodeNftMessages(in.data(), in.size(), w);
  fuzz::CheckItems(w);
  return 0;
}
