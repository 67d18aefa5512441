#include "source.h"

#include <fcntl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "batch-layout.h"
#include "decode.h"
#include "netlink-socket.h"
#include "netns.h"
#include "nflog-config.h"

namespace nw {
namespace {

// The namespace's own values: /proc/sys/net resolves against the opener's namespace.
const char* const kSysctlPaths[] = {
    "/proc/sys/net/netfilter/nf_conntrack_max",
    "/proc/sys/net/netfilter/nf_conntrack_buckets",
    "/proc/sys/net/ipv4/ip_local_port_range",
    "/proc/sys/net/ipv4/ip_local_reserved_ports",
};
const char* const kSysctlNames[] = {"max", "buckets", "portRange", "reserved"};

constexpr int kStatsTimeoutMs = 1000;

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

uint32_t U32Opt(Napi::Object o, const char* key, uint32_t def, uint32_t lo, uint32_t hi) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) return def;
  double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= lo)) return lo;
  if (d > hi) return hi;
  return uint32_t(d);
}

/** Throws a JS Error carrying errno / syscall (and group, when >= 0) for native.ts to map. */
void ThrowSys(Napi::Env env, int err, const char* syscall, int group = -1) {
  std::string msg = std::string(syscall) + ": " + std::strerror(err);
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  if (group >= 0) e.Set("group", Napi::Number::New(env, group));
  e.ThrowAsJavaScriptException();
}

}  // namespace

Napi::Function Source::Define(Napi::Env env) {
  return DefineClass(env, "Source",
                     {
                         InstanceMethod<&Source::Start>("start"),
                         InstanceMethod<&Source::Resync>("resync"),
                         InstanceMethod<&Source::SetUpdates>("setUpdates"),
                         InstanceMethod<&Source::BindNflog>("bindNflog"),
                         InstanceMethod<&Source::ReadStats>("readStats"),
                         InstanceMethod<&Source::ReceivePath>("receivePath"),
                         InstanceMethod<&Source::ReadSysctls>("readSysctls"),
                         InstanceMethod<&Source::Ref>("ref"),
                         InstanceMethod<&Source::Unref>("unref"),
                         InstanceMethod<&Source::Close>("close"),
                     });
}

// new Source({netns, conntrack, updates, nflogGroups, rcvbuf, batchRecords, batchMs,
//             quietBatchMs, dump, queue, slotBytes}, onBatch)
Source::Source(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Source>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction()) {
    Napi::TypeError::New(env, "Source(options, onBatch)").ThrowAsJavaScriptException();
    return;
  }
  Napi::Object o = info[0].As<Napi::Object>();
  Napi::Value ns = o.Get("netns");
  if (ns.IsString()) netns_ = ns.As<Napi::String>().Utf8Value();
  Napi::Value ct = o.Get("conntrack");
  if (ct.IsBoolean()) conntrack_ = ct.As<Napi::Boolean>().Value();
  Napi::Value updates = o.Get("updates");
  if (updates.IsBoolean()) updates_ = updates.As<Napi::Boolean>().Value();
  Napi::Value dump = o.Get("dump");
  copts_.dump_on_start = dump.IsBoolean() ? dump.As<Napi::Boolean>().Value() : true;
  Napi::Value groups = o.Get("nflogGroups");
  if (groups.IsArray()) {
    Napi::Array a = groups.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length() && i < kMaxNflogGroups; i++) {
      Napi::Value g = a.Get(i);
      if (g.IsNumber()) groups_.push_back(uint16_t(g.As<Napi::Number>().Uint32Value()));
    }
  }
  rcvbuf_ = int(U32Opt(o, "rcvbuf", 64u << 20, 4096, 1u << 30));
  copts_.batch_records = U32Opt(o, "batchRecords", 4096, 1, 65536);
  copts_.batch_ms = U32Opt(o, "batchMs", 5, 1, 1000);
  quiet_batch_ms_ = U32Opt(o, "quietBatchMs", copts_.batch_ms, 1, 1000);
  queue_ = U32Opt(o, "queue", 64, 1, 4096);
  copts_.slot_bytes = U32Opt(o, "slotBytes", 0, 0, 1u << 16);
  on_batch_ = Napi::Persistent(info[1].As<Napi::Function>());
}

Source::~Source() { Shutdown(); }

void Source::CleanupHook(void* self) {
  Source* s = static_cast<Source*>(self);
  s->hook_ = false;
  s->Shutdown();
}

void Source::Shutdown() {
  if (hook_) {
    napi_remove_env_cleanup_hook(Env(), CleanupHook, this);
    hook_ = false;
  }
  if (channel_) {
    reader_->Remove(channel_);  // the reader closes the channel's sockets
    channel_ = nullptr;
    ct_fd_ = -1;
  }
  for (Unbound& u : unbound_) CloseFd(u.fd);
  unbound_.clear();
  CloseFd(stats_fd_);
  for (int& fd : sysctl_fds_) CloseFd(fd);
  closed_ = true;
}

Napi::Value Source::Start(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (started_ || closed_) {
    Napi::Error::New(env, "source already started or closed").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  started_ = true;
  int ct_rcvbuf = 0;
  int nl_rcvbuf = 0;
  ChannelFds fds;
  std::vector<int> group_fds(groups_.size(), -1);
  auto close_all = [&] {
    CloseFd(fds.ct);
    CloseFd(fds.dump);
    CloseFd(fds.ifname);
    for (int& fd : group_fds) CloseFd(fd);
    Shutdown();
  };
  // Everything namespace-bound is created in one helper-thread trip. Each NFLOG group gets its
  // own socket: a group another program holds can then be retried later (BindNflog) on a socket
  // the reader does not read, while the reader reads the groups that are ours.
  NsError r = RunInNetns(netns_, [&](const char** sc) -> int {
    int fd;
    if (conntrack_) {
      if ((fd = NlOpen()) < 0) return *sc = "socket", -fd;
      fds.ct = fd;
      // NEW and DESTROY keep the occupancy exact (a NEW missed in an overrun comes back with
      // the resync dump); UPDATE, two thirds of a TCP connection's events, only while someone
      // reads events (SetUpdates).
      for (unsigned g : {unsigned(NFNLGRP_CONNTRACK_NEW), unsigned(NFNLGRP_CONNTRACK_DESTROY)}) {
        if (int e = NlJoinGroup(fds.ct, g)) return *sc = "membership", e;
      }
      if (updates_) {
        if (int e = NlJoinGroup(fds.ct, NFNLGRP_CONNTRACK_UPDATE)) return *sc = "membership", e;
      }
      if ((ct_rcvbuf = NlSetRcvbuf(fds.ct, rcvbuf_)) < 0) return *sc = "setsockopt", -ct_rcvbuf;
      if ((fd = NlOpen()) < 0) return *sc = "socket", -fd;
      fds.dump = fd;
    }
    if ((fd = NlOpen()) < 0) return *sc = "socket", -fd;
    stats_fd_ = fd;
    for (size_t i = 0; i < groups_.size(); i++) {
      if ((fd = NlOpen()) < 0) return *sc = "socket", -fd;
      group_fds[i] = fd;
      if ((nl_rcvbuf = NlSetRcvbuf(fd, rcvbuf_)) < 0) return *sc = "setsockopt", -nl_rcvbuf;
    }
    if (!groups_.empty()) fds.ifname = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);  // may fail
    for (int i = 0; i < kSysCount; i++) sysctl_fds_[i] = open(kSysctlPaths[i], O_RDONLY | O_CLOEXEC);
    return 0;
  });
  if (r.err) {
    close_all();
    ThrowSys(env, r.err, r.syscall);
    return env.Undefined();
  }
  // Bind what we can; report every group's errno (0 = bound) and let JS decide whether a
  // group held elsewhere is fatal (asked for explicitly) or retried (chosen from the ruleset).
  Napi::Array results = Napi::Array::New(env, groups_.size());
  for (size_t i = 0; i < groups_.size(); i++) {
    int e = NflogBind(group_fds[i], groups_[i], &nflog_seq_);
    Napi::Object g = Napi::Object::New(env);
    g.Set("group", Napi::Number::New(env, groups_[i]));
    g.Set("errno", Napi::Number::New(env, e));
    results.Set(uint32_t(i), g);
  }
  // A window (≤ 25 ms by default) of events at the kernel's ≈ 400k events/s is ≈ 10k
  // datagrams, ≈ 10 MiB of buffer: coalesce only when the buffer holds that with room to spare.
  copts_.coalesce = ct_rcvbuf >= (32 << 20);
  tsfn_ = BatchTsfn::New(env, on_batch_.Value(), "natwatch-netlink", queue_, 1, &EnvBatchPool(env));
  ChannelOptions co = copts_;
  co.batch_ms = updates_ ? copts_.batch_ms : quiet_batch_ms_;
  Channel* ch = new Channel(fds, co, tsfn_);
  fds = ChannelFds{};  // the channel owns them now
  for (size_t i = 0; i < groups_.size(); i++) {
    if (results.Get(uint32_t(i)).As<Napi::Object>().Get("errno").As<Napi::Number>().Int32Value() == 0) {
      ch->AddNflogFd(group_fds[i]);
    } else {
      unbound_.push_back({groups_[i], group_fds[i]});
    }
    group_fds[i] = -1;
  }
  ct_fd_ = ch->CtFd();
  reader_ = &EnvReader(env);
  if (int e = reader_->Add(ch)) {  // the first source starts the thread: that can fail
    ct_fd_ = -1;
    Shutdown();
    ThrowSys(env, e, "reader-start");  // epoll, eventfd, buffer or thread
    return env.Undefined();
  }
  channel_ = ch;
  napi_add_env_cleanup_hook(env, CleanupHook, this);
  hook_ = true;
  Napi::Object out = Napi::Object::New(env);
  out.Set("conntrack", Napi::Number::New(env, ct_rcvbuf));
  out.Set("nflog", Napi::Number::New(env, nl_rcvbuf));
  out.Set("groups", results);
  return out;
}

// bindNflog(group) → errno (0: bound now, and read from here on). Retries a group whose first
// bind failed, on its own socket, synchronously (acks come at once; bounded by the config
// timeout). EPERM/EBUSY while the other program still holds it.
Napi::Value Source::BindNflog(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) {
    Napi::TypeError::New(env, "bindNflog(group)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const uint32_t group = info[0].As<Napi::Number>().Uint32Value();
  for (size_t i = 0; i < unbound_.size(); i++) {
    if (unbound_[i].group != group) continue;
    if (!channel_) return Napi::Number::New(env, EBADF);
    int e = NflogBind(unbound_[i].fd, uint16_t(group), &nflog_seq_);
    if (e == 0) {
      reader_->AddNflog(channel_, unbound_[i].fd);
      unbound_.erase(unbound_.begin() + long(i));
    }
    return Napi::Number::New(env, e);
  }
  return Napi::Number::New(env, ENOENT);  // not one of ours, or bound already
}

// receivePath() → 'io_uring' | 'recvmmsg' | null (not started, closed, or not set up yet).
Napi::Value Source::ReceivePath(const Napi::CallbackInfo& info) {
  const char* p = channel_ ? channel_->ReceivePath() : nullptr;
  return p ? Napi::String::New(info.Env(), p) : info.Env().Null();
}

Napi::Value Source::Resync(const Napi::CallbackInfo& info) {
  if (channel_) reader_->RequestDump(channel_);
  return info.Env().Undefined();
}

// setUpdates(on): joins or leaves NFNLGRP_CONNTRACK_UPDATE on the live event socket. Membership
// belongs to the socket (its namespace was fixed at creation), so no namespace trip; the reader
// thread keeps reading the same fd (setsockopt and recv on one socket from two threads is
// fine). Before start() it only sets what start() joins.
Napi::Value Source::SetUpdates(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBoolean()) {
    Napi::TypeError::New(env, "setUpdates(boolean)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  const bool on = info[0].As<Napi::Boolean>().Value();
  if (on == updates_) return env.Undefined();
  if (ct_fd_ >= 0) {
    int e = on ? NlJoinGroup(ct_fd_, NFNLGRP_CONNTRACK_UPDATE)
               : NlLeaveGroup(ct_fd_, NFNLGRP_CONNTRACK_UPDATE);
    if (e) {
      ThrowSys(env, e, "membership");
      return env.Undefined();
    }
  }
  updates_ = on;
  // Someone reads events: hand them over promptly; tracking alone needs no 5 ms latency and
  // pays per hand-over (a JS call), so it gets the longer window.
  if (channel_) channel_->SetBatchMs(on ? copts_.batch_ms : quiet_batch_ms_);
  return env.Undefined();
}

namespace {
struct StatsCtx {
  uint8_t* rec;
  DecodeCounters c;
  bool global;
};
void OnStats(void* p, const nlmsghdr* nlh) {
  StatsCtx* s = static_cast<StatsCtx*>(p);
  if (s->global) {
    SetStatsGlobal(nlh, s->rec, s->c);
  } else {
    AddStatsCpu(nlh, s->rec, s->c);
  }
}
}  // namespace

// Synchronous on the JS thread: two small request/replies that the kernel answers at once
// (bounded by kStatsTimeoutMs); a worker thread would cost more than it saves.
Napi::Value Source::ReadStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (stats_fd_ < 0) {
    Napi::Error::New(env, "source not started").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  uint8_t batch[kHeaderSize + kStRecordSize] = {};
  uint8_t* rec = batch + kHeaderSize;
  StatsCtx ctx{rec, {}, false};
  uint32_t foreign = 0;
  alignas(nlmsghdr) uint8_t req[64];
  const uint16_t types[2] = {IPCTNL_MSG_CT_GET_STATS_CPU, IPCTNL_MSG_CT_GET_STATS};
  for (int i = 0; i < 2; i++) {
    ctx.global = i == 1;
    uint16_t flags = NLM_F_REQUEST | (i == 0 ? NLM_F_DUMP : NLM_F_ACK);
    nlmsghdr* nlh = NlStart(req, sizeof(req), uint16_t((NFNL_SUBSYS_CTNETLINK << 8) | types[i]),
                            flags, AF_UNSPEC, 0, ++stats_seq_);
    int e = NlSend(stats_fd_, nlh);
    if (!e) e = NlTransact(stats_fd_, stats_seq_, kStatsTimeoutMs, OnStats, &ctx, &foreign);
    if (e) {
      ThrowSys(env, e, i == 0 ? "ct-get-stats-cpu" : "ct-get-stats");
      return env.Undefined();
    }
  }
  uint32_t magic = kBatchMagic, one = 1, rsize = kStRecordSize;
  uint16_t version = kBatchVersion;
  std::memcpy(batch + kHdrMagic, &magic, 4);
  std::memcpy(batch + kHdrVersion, &version, 2);
  batch[kHdrKind] = kKindStats;
  std::memcpy(batch + kHdrCount, &one, 4);
  std::memcpy(batch + kHdrRecordSize, &rsize, 4);
  std::memcpy(batch + kHdrDecodeErrors, &ctx.c.errors, 4);
  std::memcpy(batch + kHdrUnknownAttrs, &ctx.c.unknown, 4);
  std::memcpy(batch + kHdrForeign, &foreign, 4);
  return Napi::Buffer<uint8_t>::Copy(env, batch, sizeof(batch));
}

Napi::Value Source::ReadSysctls(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object out = Napi::Object::New(env);
  for (int i = 0; i < kSysCount; i++) {
    char buf[4096];
    ssize_t n = sysctl_fds_[i] >= 0 ? pread(sysctl_fds_[i], buf, sizeof(buf) - 1, 0) : -1;
    if (n < 0) {
      out.Set(kSysctlNames[i], env.Null());
    } else {
      out.Set(kSysctlNames[i], Napi::String::New(env, buf, size_t(n)));
    }
  }
  return out;
}

Napi::Value Source::Ref(const Napi::CallbackInfo& info) {
  if (channel_) tsfn_.Ref(info.Env());
  return info.Env().Undefined();
}

Napi::Value Source::Unref(const Napi::CallbackInfo& info) {
  if (channel_) tsfn_.Unref(info.Env());
  return info.Env().Undefined();
}

Napi::Value Source::Close(const Napi::CallbackInfo& info) {
  Shutdown();
  return info.Env().Undefined();
}

}  // namespace nw
