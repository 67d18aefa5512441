// The JS-facing source object: opens the namespace's sockets, binds NFLOG groups, registers its
// sockets with the environment's shared reader (reader.h), answers counter reads. All methods
// run on the JS thread.
#pragma once
#include <napi.h>

#include <string>
#include <vector>

#include "netlink-socket.h"
#include "reader.h"

namespace nw {

/** The environment's one reader (AddonData, addon.cc). */
Reader& EnvReader(Napi::Env env);
/** The environment's one Buffer that batches are handed over in (AddonData, addon.cc). */
BatchPool& EnvBatchPool(Napi::Env env);

class Source : public Napi::ObjectWrap<Source> {
 public:
  static Napi::Function Define(Napi::Env env);
  explicit Source(const Napi::CallbackInfo& info);
  ~Source() override;

 private:
  Napi::Value Start(const Napi::CallbackInfo& info);
  Napi::Value Resync(const Napi::CallbackInfo& info);
  Napi::Value SetUpdates(const Napi::CallbackInfo& info);
  Napi::Value BindNflog(const Napi::CallbackInfo& info);
  Napi::Value ReadStats(const Napi::CallbackInfo& info);
  Napi::Value ReceivePath(const Napi::CallbackInfo& info);
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
  ChannelOptions copts_;
  /** Hand-off window while nobody reads events (tracking only), ms: longer, fewer JS calls. */
  uint32_t quiet_batch_ms_ = 25;
  uint32_t queue_ = 64;
  Napi::FunctionReference on_batch_;

  // state
  enum { kSysMax, kSysBuckets, kSysPortRange, kSysReserved, kSysCount };
  /** An NFLOG group's own socket that another program's bind still keeps from us: kept here,
   *  unregistered, so that BindNflog() can retry on it while the reader reads the others. */
  struct Unbound {
    uint16_t group;
    int fd;
  };
  std::vector<Unbound> unbound_;
  int stats_fd_ = -1;
  int sysctl_fds_[kSysCount] = {-1, -1, -1, -1};
  uint32_t stats_seq_ = NlRandomSeq();
  uint32_t nflog_seq_ = NlRandomSeq();
  Reader* reader_ = nullptr;
  Channel* channel_ = nullptr;  // owned by the reader once added; null after Shutdown
  int ct_fd_ = -1;              // the channel's event socket (membership changes), borrowed
  BatchTsfn tsfn_;
  bool started_ = false;
  bool closed_ = false;
  bool hook_ = false;
};

}  // namespace nw
