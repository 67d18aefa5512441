// Shared by the libFuzzer targets (test/fuzz/fuzz-*.cc): the reader thread's batch path, with
// every record in an allocation of its own exact size so that a write past a record lands in
// an AddressSanitizer redzone instead of a neighbouring (or unused) record slot.
#pragma once
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "batch-layout.h"
#include "batch-writer.h"

namespace nw::fuzz {

/** A broken invariant is a finding: print it and abort, so libFuzzer saves the input. */
#define FUZZ_CHECK(cond)                                                       \
  do {                                                                         \
    if (!(cond)) {                                                             \
      std::fprintf(stderr, "FUZZ_CHECK failed: %s (%s:%d)\n", #cond, __FILE__, \
                   __LINE__);                                                  \
      std::abort();                                                            \
    }                                                                          \
  } while (0)

/**
 * A batch writer holding one record: Reserve() allocates header + exactly one record, so the
 * record ends where the allocation ends. The reader flushes a writer when Full(); so does
 * Append's caller here, after every record.
 */
inline BatchWriter OneRecordWriter(uint8_t kind, uint32_t record_size) {
  return BatchWriter(kind, record_size, 1);
}

/** Takes the batch as Reader::Flush does, checks its header against what was written, frees it. */
inline void TakeAndCheck(BatchWriter& w, uint8_t kind, uint32_t record_size, LossCounters& loss) {
  const uint32_t count = w.Count();
  Batch b = w.Take(loss);
  FUZZ_CHECK(b.data != nullptr);
  uint32_t magic, n, rsize;
  std::memcpy(&magic, b.data + kHdrMagic, 4);
  std::memcpy(&n, b.data + kHdrCount, 4);
  std::memcpy(&rsize, b.data + kHdrRecordSize, 4);
  FUZZ_CHECK(magic == kBatchMagic && b.data[kHdrKind] == kind);
  FUZZ_CHECK(n == count && rsize == record_size);
  FUZZ_CHECK(b.size == kHeaderSize + n * rsize);
  std::free(b.data);
}

/**
 * The input copied to a fresh allocation of exactly its size, aligned like the reader's receive
 * buffer (libFuzzer's own copy is exact too; the standalone driver's need not be).
 */
class ExactCopy {
 public:
  ExactCopy(const uint8_t* data, size_t size)
      : size_(size), p_(static_cast<uint8_t*>(std::malloc(size ? size : 1))) {
    if (size) std::memcpy(p_, data, size);
  }
  ~ExactCopy() { std::free(p_); }
  ExactCopy(const ExactCopy&) = delete;
  ExactCopy& operator=(const ExactCopy&) = delete;
  const uint8_t* data() const { return p_; }
  size_t size() const { return size_; }

 private:
  size_t size_;
  uint8_t* p_;
};

}  // namespace nw::fuzz
