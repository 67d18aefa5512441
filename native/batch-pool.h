// The one JS Buffer every batch of an environment is copied into before its callback. A new
// Buffer per batch (≈ 75 KB every 25 ms under load) is external memory to V8, and its growth
// alone started a full mark-compact every few seconds; reusing one costs no allocation at all.
// Safe because batches are delivered one at a time on the JS thread and a view is valid only
// during the callback that received it (src/source/types.ts).
#pragma once
#include <node_api.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace nw {

class BatchPool {
 public:
  /** A Buffer holding a copy of data (it may be longer than size: the header carries the
   *  count), or nullptr if no buffer could be made. Grows by doubling, never shrinks. */
  napi_value Fill(napi_env env, const void* data, size_t size) {
    napi_value buf;
    if (size > limit_) return nullptr;
    if (size > cap_) {
      size_t cap = cap_ ? cap_ : kInitial;
      while (cap < size) cap *= 2;
      void* mem;
      napi_ref ref;
      if (napi_create_buffer(env, cap, &mem, &buf) != napi_ok ||
          napi_create_reference(env, buf, 1, &ref) != napi_ok) {
        return nullptr;
      }
      if (ref_) napi_delete_reference(env, ref_);
      ref_ = ref;
      mem_ = mem;
      cap_ = cap;
    } else if (napi_get_reference_value(env, ref_, &buf) != napi_ok) {
      return nullptr;
    }
    std::memcpy(mem_, data, size);
    return buf;
  }

  /** Test hook (limitBatchPool): Fill fails for a batch larger than this, as it would without memory. */
  void SetLimit(size_t bytes) { limit_ = bytes ? bytes : SIZE_MAX; }

 private:
  static constexpr size_t kInitial = 64 << 10;
  size_t limit_ = SIZE_MAX;
  napi_ref ref_ = nullptr;  // freed with the environment, like every reference it still holds
  void* mem_ = nullptr;
  size_t cap_ = 0;
};

}  // namespace nw
