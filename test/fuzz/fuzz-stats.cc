// libFuzzer target: one datagram through the counter path (NlTransact + Source::ReadStats'
// OnStats): per-CPU replies summed, then the global count, into a stats record allocated at
// exactly its size. Seeds: test/fixtures/stats-*.hex (captured by scripts/capture-fixtures.mjs).
#include <linux/netlink.h>

#include <cstdlib>
#include <cstring>

#include "decode.h"
#include "fuzz-common.h"

using namespace nw;

namespace {

double Cpus(const uint8_t* rec) {
  double v;
  std::memcpy(&v, rec + kStCpus, 8);
  return v;
}

// One reply walked as NlTransact walks it: messages of other sequence numbers skipped, the
// walk stopped at NLMSG_DONE / NLMSG_ERROR.
void Reply(const uint8_t* buf, size_t n, bool global, uint8_t* rec) {
  const uint32_t seq = n >= NLMSG_HDRLEN ? reinterpret_cast<const nlmsghdr*>(buf)->nlmsg_seq : 0;
  DecodeCounters c;
  int end = -1;
  WalkDatagram(buf, n, c, [&](const nlmsghdr* nlh) {
    if (nlh->nlmsg_seq != seq) return true;
    if (EndOfReply(nlh, &end)) return false;
    const double before = Cpus(rec);
    if (global) {
      SetStatsGlobal(nlh, rec, c);
      FUZZ_CHECK(Cpus(rec) == before);
    } else {
      const bool ok = AddStatsCpu(nlh, rec, c);
      FUZZ_CHECK(Cpus(rec) == before + (ok ? 1 : 0));  // a malformed CPU adds nothing
    }
    return true;
  });
  FUZZ_CHECK(end >= -1);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::ExactCopy in(data, size);
  uint8_t* rec = static_cast<uint8_t*>(std::calloc(1, kStRecordSize));
  Reply(in.data(), in.size(), false, rec);
  Reply(in.data(), in.size(), true, rec);
  std::free(rec);
  return 0;
}
