// libFuzzer target: one datagram through the conntrack event path (Reader::DrainConntrack) and
// the dump path (Reader::DrainDump), into batches whose every record is its own allocation.
// Every message is also decoded with its tuples walked: the record and the counters must be the
// ones the fixed-layout tuple path gave.
// Seeds: test/fixtures/ct-*.hex (captured from the kernel by scripts/capture-fixtures.mjs).
#include <linux/netlink.h>

#include <cstring>

#include "decode.h"
#include "fuzz-common.h"
#include "records.h"

using namespace nw;

namespace {

void CheckRecord(const uint8_t* rec, bool dump) {
  const uint8_t kind = rec[kCtKind];
  FUZZ_CHECK(dump ? kind == 4 : kind >= 1 && kind <= 3);
  FUZZ_CHECK(rec[kCtFamily] == 4 || rec[kCtFamily] == 6);
}

// rec: what AppendConntrack made of nlh (nullptr: nothing); c_before/c_after: the counters
// around that call.
void CheckWalkAgrees(const nlmsghdr* nlh, bool dump, const uint8_t* rec, const DecodeCounters& c_before,
                     const DecodeCounters& c_after) {
  if ((nlh->nlmsg_type >> 8) != NFNL_SUBSYS_CTNETLINK) return;
  uint8_t walked[kCtRecordSize];
  DecodeCounters c = c_before;
  const bool ok = DecodeConntrack(nlh, dump, 1.0, walked, c, false);
  FUZZ_CHECK(ok == (rec != nullptr));
  FUZZ_CHECK(c.errors == c_after.errors && c.unknown == c_after.unknown);
  if (ok) FUZZ_CHECK(std::memcmp(walked, rec, kCtRecordSize) == 0);
}

void Events(const uint8_t* buf, size_t n) {
  BatchWriter w = fuzz::OneRecordWriter(kKindConntrack, kCtRecordSize);
  LossCounters loss;
  DecodeCounters c;
  WalkDatagram(buf, n, c, [&](const nlmsghdr* nlh) {
    const DecodeCounters before = c;
    const uint8_t* rec = AppendConntrack(nlh, false, 1.0, w, c);
    CheckWalkAgrees(nlh, false, rec, before, c);
    if (rec) {
      CheckRecord(rec, false);
      if (w.Full()) fuzz::TakeAndCheck(w, kKindConntrack, kCtRecordSize, loss);
    }
    return true;
  });
  loss.decode_errors += c.errors;
  loss.unknown_attrs += c.unknown;
  fuzz::TakeAndCheck(w, kKindConntrack, kCtRecordSize, loss);
}

void Dump(const uint8_t* buf, size_t n) {
  BatchWriter w = fuzz::OneRecordWriter(kKindConntrack, kCtRecordSize);
  LossCounters loss;
  DecodeCounters c;
  // The dump's sequence number: the first message's, so both the skip and the take run.
  const uint32_t seq = n >= NLMSG_HDRLEN ? reinterpret_cast<const nlmsghdr*>(buf)->nlmsg_seq : 0;
  int end = -1;
  bool intr = false;
  WalkDatagram(buf, n, c, [&](const nlmsghdr* nlh) {
    if (nlh->nlmsg_seq != seq) return true;
    if (EndOfReply(nlh, &end)) return false;
    if (nlh->nlmsg_flags & NLM_F_DUMP_INTR) intr = true;
    const DecodeCounters before = c;
    const uint8_t* rec = AppendConntrack(nlh, true, 1.0, w, c);
    CheckWalkAgrees(nlh, true, rec, before, c);
    if (rec) {
      CheckRecord(rec, true);
      if (w.Full()) fuzz::TakeAndCheck(w, kKindConntrack, kCtRecordSize, loss);
    }
    return true;
  });
  FUZZ_CHECK(end >= -1);  // errno values are never negative
  if (end >= 0) {
    loss.flags |= kFlagDumpEnd;
    if (end || intr) loss.flags |= kFlagDumpError;
  }
  fuzz::TakeAndCheck(w, kKindConntrack, kCtRecordSize, loss);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::ExactCopy in(data, size);
  Events(in.data(), in.size());
  Dump(in.data(), in.size());
  return 0;
}
