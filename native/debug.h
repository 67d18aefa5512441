#pragma once
#include <napi.h>

namespace nw {
Napi::Value DecodeForTest(const Napi::CallbackInfo& info);
Napi::Value Capture(const Napi::CallbackInfo& info);
Napi::Value LimitBatchPool(const Napi::CallbackInfo& info);
}  // namespace nw
