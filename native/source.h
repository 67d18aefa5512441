// The JS-facing source object: opens the namespace's sockets, binds NFLOG groups, runs the
// reader thread, answers counter reads. All methods run on the JS thread.
#pragma once
#include <napi.h>

#include <string>
#include <vector>

#include "netlink-socket.h"
#include "reader.h"

namespace nw {

class Source : public Napi::ObjectWrap<Source> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Source(const Napi::CallbackInfo& info);
  ~Source() override;

 private:
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Resync(const Napi::CallbackInfo& info);
  Napi::Value SetUpdates(const Napi::CallbackInfo& info);
  Napi::Value ReadStats(const Napi::CallbackInfo& info);
  Napi::Value ReadSysctls(const Napi::CallbackInfo& info);
  Napi::Value Ref(const Napi::CallbackInfo& info);
  Napi::Value Unref(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  void Shutdown();
  static void CleanupHook(void* self);

  // options
  std::string netns_;
  bool conntrack_ = true;
  bool updates_ = false;  // member of NFNLGRP_CONNTRACK_UPDATE
  std::vector<uint16_t> groups_;
  int rcvbuf_ = 64 << 20;
  ReaderOptions ropts_;
  uint32_t queue_ = 64;
  Napi::FunctionReference on_batch_;

  // state
  enum { kSysMax, kSysBuckets, kSysPortRange, kSysReserved, kSysCount };
  ReaderFds fds_;
  int stats_fd_ = -1;
  int sysctl_fds_[kSysCount] = {-1, -1, -1, -1};
  uint32_t stats_seq_ = NlRandomSeq();
  Reader* reader_ = nullptr;
  BatchTsfn tsfn_;
  bool started_ = false;
  bool closed_ = false;
  bool hook_ = false;
};

}  // namespace nw
