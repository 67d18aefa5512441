// Builds one packed batch (batch-layout.h): header + fixed-width records. The reader thread
// owns one writer per kind; Take() hands the finished buffer over (one allocation per batch,
// none per record).
#pragma once
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "batch-layout.h"

namespace nw {

struct Batch {
  uint8_t* data;
  uint32_t size;
};

struct LossCounters {
  uint32_t enobufs = 0;
  uint32_t kernel_drops = 0;
  uint32_t dropped = 0;
  uint32_t seq_gap = 0;
  uint32_t decode_errors = 0;
  uint32_t unknown_attrs = 0;
  uint32_t foreign = 0;
  uint32_t err = 0;
  uint8_t flags = 0;
  bool Any() const {
    return enobufs || kernel_drops || dropped || seq_gap || decode_errors || unknown_attrs || foreign ||
           err || flags;
  }
};

class BatchWriter {
 public:
  BatchWriter(uint8_t kind, uint32_t record_size, uint32_t capacity)
      : kind_(kind), record_size_(record_size), capacity_(capacity ? capacity : 1) {}
  ~BatchWriter() { std::free(data_); }
  BatchWriter(const BatchWriter&) = delete;
  BatchWriter& operator=(const BatchWriter&) = delete;

  /** Space for the next record, or nullptr when out of memory (counted: TakeLost()).
   *  Commit() keeps it. */
  uint8_t* Reserve() {
    if (!data_) {
      data_ = static_cast<uint8_t*>(std::malloc(kHeaderSize + size_t(record_size_) * capacity_));
      if (!data_) {
        lost_++;
        return nullptr;
      }
      count_ = 0;
    }
    return data_ + kHeaderSize + size_t(record_size_) * count_;
  }
  void Commit() { count_++; }
  bool Full() const { return count_ >= capacity_; }
  uint32_t Count() const { return data_ ? count_ : 0; }
  uint32_t Capacity() const { return capacity_; }
  /** Records refused for want of memory since the last call: events lost (kHdrDropped). */
  uint32_t TakeLost() {
    uint32_t n = lost_;
    lost_ = 0;
    return n;
  }

  /** Finishes the header with the pending counters (then cleared) and releases the buffer. */
  Batch Take(LossCounters& pending) {
    if (!data_) {
      data_ = static_cast<uint8_t*>(std::malloc(kHeaderSize));
      count_ = 0;
      if (!data_) return {nullptr, 0};
    }
    uint8_t* h = data_;
    std::memset(h, 0, kHeaderSize);
    Put32(h + kHdrMagic, kBatchMagic);
    uint16_t v = kBatchVersion;
    std::memcpy(h + kHdrVersion, &v, 2);
    h[kHdrKind] = kind_;
    h[kHdrFlags] = pending.flags;
    Put32(h + kHdrCount, count_);
    Put32(h + kHdrRecordSize, record_size_);
    Put32(h + kHdrEnobufs, pending.enobufs);
    Put32(h + kHdrDropped, pending.dropped);
    Put32(h + kHdrSeqGap, pending.seq_gap);
    Put32(h + kHdrDecodeErrors, pending.decode_errors);
    Put32(h + kHdrUnknownAttrs, pending.unknown_attrs);
    Put32(h + kHdrErrno, pending.err);
    Put32(h + kHdrKernelDrops, pending.kernel_drops);
    Put32(h + kHdrForeign, pending.foreign);
    pending = LossCounters{};
    Batch b{data_, kHeaderSize + record_size_ * count_};
    data_ = nullptr;
    count_ = 0;
    return b;
  }

 private:
  static void Put32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
  uint8_t kind_;
  uint32_t record_size_;
  uint32_t capacity_;
  uint8_t* data_ = nullptr;
  uint32_t count_ = 0;
  uint32_t lost_ = 0;
};

}  // namespace nw
