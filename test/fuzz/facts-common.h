// Shared by the kernel-facts fuzz targets: the item framing check of the FactsWriter output
// (what src/source/facts-codec.ts relies on).
#pragma once
#include <cstdint>
#include <cstring>
#include <vector>

#include "facts-writer.h"
#include "fuzz-common.h"

namespace nw::fuzz {

/** Walks the items: each u16 type, u16 length, payload, padding to 4, ending exactly at the end. */
inline size_t CheckItems(const FactsWriter& w) {
  const std::vector<uint8_t>& d = w.Data();
  size_t off = 0, items = 0;
  while (off < d.size()) {
    FUZZ_CHECK(d.size() - off >= 4);
    uint16_t len;
    std::memcpy(&len, d.data() + off + 2, 2);
    FUZZ_CHECK(d.size() - off - 4 >= len);
    off += 4 + len + (4 - len % 4) % 4;
    FUZZ_CHECK(off <= d.size());
    items++;
  }
  return items;
}

}  // namespace nw::fuzz
