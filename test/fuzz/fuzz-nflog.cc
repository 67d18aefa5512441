// libFuzzer target: one datagram through the NFLOG path (Reader::DrainNflog): decode, interface
// names, per-group sequence gaps, into batches whose every record is its own allocation.
// Seeds: test/fixtures/nflog-*.hex (captured from the kernel by scripts/capture-fixtures.mjs).
#include <linux/netlink.h>

#include "decode.h"
#include "fuzz-common.h"
#include "ifname-cache.h"
#include "records.h"

using namespace nw;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::ExactCopy in(data, size);
  BatchWriter w = fuzz::OneRecordWriter(kKindNflog, kNlRecordSize);
  LossCounters loss;
  DecodeCounters c;
  IfnameCache ifnames(-1);  // no socket: names stay empty, the record writes still happen
  SeqTracker seqs;
  WalkDatagram(in.data(), in.size(), c, [&](const nlmsghdr* nlh) {
    uint8_t* rec = AppendNflog(nlh, 1.0, w, c);
    if (!rec) return true;
    FUZZ_CHECK(rec[kNlPrefixLen] <= kNlPrefixMax);
    FUZZ_CHECK(rec[kNlFamily] == 0 || rec[kNlFamily] == 4 || rec[kNlFamily] == 6);
    uint32_t idx;
    std::memcpy(&idx, rec + kNlIndex, 4);
    if (rec[kNlFlags] & kNlFlagIndev) ifnames.Lookup(idx, 0, rec + kNlIndevName);
    std::memcpy(&idx, rec + kNlOutdex, 4);
    if (rec[kNlFlags] & kNlFlagOutdev) ifnames.Lookup(idx, 0, rec + kNlOutdevName);
    if (rec[kNlFlags] & kNlFlagSeq) {
      uint16_t group;
      uint32_t seq;
      std::memcpy(&group, rec + kNlGroup, 2);
      std::memcpy(&seq, rec + kNlSeq, 4);
      loss.seq_gap += seqs.Gap(group, seq);
    }
    if (w.Full()) fuzz::TakeAndCheck(w, kKindNflog, kNlRecordSize, loss);
    return true;
  });
  loss.decode_errors += c.errors;
  loss.unknown_attrs += c.unknown;
  fuzz::TakeAndCheck(w, kKindNflog, kNlRecordSize, loss);
  return 0;
}
