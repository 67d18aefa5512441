// Addon entry points for kernel facts (kernel-facts.cc).
#pragma once
#include <napi.h>

namespace nw {
Napi::Value KernelFacts(const Napi::CallbackInfo& info);
Napi::Value WatchKernel(const Napi::CallbackInfo& info);
}  // namespace nw
