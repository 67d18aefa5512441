// Reads the namespace's iptables-legacy tables (see ipt-legacy.cc); runs on a thread that is
// already in the namespace.
#pragma once
#include <cstdint>

#include "facts-writer.h"

namespace nw {

/** family 4 or 6: every listed table's chains and rules, or an error item. */
void ReadIptLegacy(uint8_t family, FactsWriter& out);

}  // namespace nw
