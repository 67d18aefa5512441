// Test and fixture entry points: decodeForTest runs the reader's decode path on a raw datagram;
// capture records raw datagrams from a live namespace (scripts/capture-fixtures.mjs);
// limitBatchPool makes batches above a size fail to reach JavaScript, as without memory.
#include "debug.h"

#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "batch-writer.h"
#include "netlink-socket.h"
#include "netns.h"
#include "nflog-config.h"
#include "records.h"
#include "source.h"

namespace nw {
namespace {

// Messages in a datagram are at least NLMSG_HDRLEN apart: an upper bound on records.
uint32_t MaxRecords(size_t n) { return uint32_t(n / NLMSG_HDRLEN + 1); }

Napi::Value TakeBuffer(Napi::Env env, BatchWriter& w, LossCounters& loss) {
  Batch b = w.Take(loss);
  if (!b.data) {
    Napi::Error::New(env, "out of memory").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Value out = Napi::Buffer<uint8_t>::Copy(env, b.data, b.size);
  std::free(b.data);
  return out;
}

}  // namespace

// decodeForTest(kind: 'conntrack'|'dump'|'nflog'|'stats', datagram: Buffer, tsMs?: number)
Napi::Value DecodeForTest(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsString() || !info[1].IsBuffer()) {
    Napi::TypeError::New(env, "decodeForTest(kind, buffer)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string kind = info[0].As<Napi::String>().Utf8Value();
  Napi::Buffer<uint8_t> in = info[1].As<Napi::Buffer<uint8_t>>();
  double ts = info.Length() > 2 && info[2].IsNumber() ? info[2].As<Napi::Number>().DoubleValue() : 0;
  // Copy into aligned memory: the reader's receive buffer is aligned, a JS Buffer need not be.
  size_t n = in.Length();
  uint8_t* buf = static_cast<uint8_t*>(std::malloc(n ? n : 1));
  if (!buf) return env.Undefined();
  std::memcpy(buf, in.Data(), n);
  DecodeCounters c;
  LossCounters loss;
  Napi::Value out;
  if (kind == "conntrack" || kind == "dump") {
    const bool dump = kind == "dump";
    BatchWriter w(kKindConntrack, kCtRecordSize, MaxRecords(n));
    WalkDatagram(buf, n, c, [&](const nlmsghdr* nlh) {
      int err;
      if (EndOfReply(nlh, &err)) {
        if (dump) loss.flags |= err ? kFlagDumpEnd | kFlagDumpError : kFlagDumpEnd;
        loss.err = uint32_t(err);
        return false;
      }
      AppendConntrack(nlh, dump, ts, w, c);
      return true;
    });
    loss.decode_errors = c.errors;
    loss.unknown_attrs = c.unknown;
    out = TakeBuffer(env, w, loss);
  } else if (kind == "nflog") {
    BatchWriter w(kKindNflog, kNlRecordSize, MaxRecords(n));
    SeqTracker seqs;
    WalkDatagram(buf, n, c, [&](const nlmsghdr* nlh) {
      uint8_t* rec = AppendNflog(nlh, ts, w, c);
      if (rec && (rec[kNlFlags] & kNlFlagSeq)) {
        uint16_t g;
        uint32_t s;
        std::memcpy(&g, rec + kNlGroup, 2);
        std::memcpy(&s, rec + kNlSeq, 4);
        loss.seq_gap += seqs.Gap(g, s);
      }
      return true;
    });
    loss.decode_errors = c.errors;
    loss.unknown_attrs = c.unknown;
    out = TakeBuffer(env, w, loss);
  } else if (kind == "stats") {
    BatchWriter w(kKindStats, kStRecordSize, 1);
    uint8_t* rec = w.Reserve();
    if (rec) {
      std::memset(rec, 0, kStRecordSize);
      w.Commit();
      WalkDatagram(buf, n, c, [&](const nlmsghdr* nlh) {
        int err;
        if (EndOfReply(nlh, &err)) return false;
        if ((nlh->nlmsg_type & 0xff) == IPCTNL_MSG_CT_GET_STATS) {
          SetStatsGlobal(nlh, rec, c);
        } else {
          AddStatsCpu(nlh, rec, c);
        }
        return true;
      });
    }
    loss.decode_errors = c.errors;
    loss.unknown_attrs = c.unknown;
    out = TakeBuffer(env, w, loss);
  } else {
    Napi::TypeError::New(env, "decodeForTest: unknown kind " + kind).ThrowAsJavaScriptException();
    out = env.Undefined();
  }
  std::free(buf);
  return out;
}

namespace {

// capture({netns, what: 'events'|'dump'|'nflog'|'stats', groups, timeoutMs, max})
class CaptureWorker : public Napi::AsyncWorker {
 public:
  CaptureWorker(Napi::Env env, std::string netns, std::string what, std::vector<uint16_t> groups,
                int timeout_ms, int max)
      : Napi::AsyncWorker(env),
        deferred_(Napi::Promise::Deferred::New(env)),
        netns_(std::move(netns)),
        what_(std::move(what)),
        groups_(std::move(groups)),
        timeout_ms_(timeout_ms),
        max_(max) {}

  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    int fd = -1;
    NsError r = RunInNetns(netns_, [&](const char** sc) -> int {
      if ((fd = NlOpen()) < 0) return *sc = "socket", -fd;
      if (what_ == "events") {
        for (unsigned g : {unsigned(NFNLGRP_CONNTRACK_NEW), unsigned(NFNLGRP_CONNTRACK_UPDATE),
                           unsigned(NFNLGRP_CONNTRACK_DESTROY)}) {
          if (int e = NlJoinGroup(fd, g)) return *sc = "membership", e;
        }
      }
      return 0;
    });
    if (r.err) {
      err_ = std::string(r.syscall) + ": " + std::strerror(r.err);
      if (fd >= 0) close(fd);
      return;
    }
    uint32_t seq = NlRandomSeq();
    bool until_done = false;
    if (what_ == "nflog") {
      for (uint16_t g : groups_) {
        if (int e = NflogBind(fd, g, &seq)) {
          err_ = "nflog-bind: " + std::string(std::strerror(e));
          close(fd);
          return;
        }
      }
    } else if (what_ == "dump" || what_ == "stats") {
      alignas(nlmsghdr) uint8_t req[64];
      uint16_t type = (NFNL_SUBSYS_CTNETLINK << 8) |
                      (what_ == "dump" ? IPCTNL_MSG_CT_GET : IPCTNL_MSG_CT_GET_STATS_CPU);
      NlSend(fd, NlStart(req, sizeof(req), type, NLM_F_REQUEST | NLM_F_DUMP, AF_UNSPEC, 0, ++seq));
      until_done = true;
    }
    std::vector<uint8_t> buf(1 << 16);
    timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
      timespec t;
      clock_gettime(CLOCK_MONOTONIC, &t);
      long el = (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
      if (el >= timeout_ms_ || int(datagrams_.size()) >= max_) break;
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, int(timeout_ms_ - el)) <= 0) continue;
      sockaddr_nl from{};
      socklen_t flen = sizeof(from);
      ssize_t n = recvfrom(fd, buf.data(), buf.size(), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &flen);
      if (n <= 0 || !NlFromKernel(from, flen)) continue;  // fixtures come from the kernel only
      datagrams_.emplace_back(buf.begin(), buf.begin() + n);
      if (until_done) {
        bool done = false;
        DecodeCounters c;
        WalkDatagram(buf.data(), size_t(n), c, [&](const nlmsghdr* nlh) {
          int err;
          return !(done = EndOfReply(nlh, &err));
        });
        if (done) break;
      }
    }
    close(fd);
  }

  void OnOK() override {
    Napi::Env env = Env();
    if (!err_.empty()) {
      deferred_.Reject(Napi::Error::New(env, err_).Value());
      return;
    }
    Napi::Array out = Napi::Array::New(env, datagrams_.size());
    for (size_t i = 0; i < datagrams_.size(); i++) {
      out.Set(uint32_t(i), Napi::Buffer<uint8_t>::Copy(env, datagrams_[i].data(), datagrams_[i].size()));
    }
    deferred_.Resolve(out);
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::string netns_;
  std::string what_;
  std::vector<uint16_t> groups_;
  int timeout_ms_;
  int max_;
  std::string err_;
  std::vector<std::vector<uint8_t>> datagrams_;
};

}  // namespace

Napi::Value Capture(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) {
    Napi::TypeError::New(env, "capture(options)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object o = info[0].As<Napi::Object>();
  std::string netns = o.Get("netns").IsString() ? o.Get("netns").As<Napi::String>().Utf8Value() : "";
  std::string what = o.Get("what").IsString() ? o.Get("what").As<Napi::String>().Utf8Value() : "events";
  std::vector<uint16_t> groups;
  if (o.Get("groups").IsArray()) {
    Napi::Array a = o.Get("groups").As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length(); i++) groups.push_back(uint16_t(a.Get(i).As<Napi::Number>().Uint32Value()));
  }
  int timeout = o.Get("timeoutMs").IsNumber() ? o.Get("timeoutMs").As<Napi::Number>().Int32Value() : 3000;
  int max = o.Get("max").IsNumber() ? o.Get("max").As<Napi::Number>().Int32Value() : 64;
  if (timeout < 0 || timeout > 60000) timeout = 3000;
  if (max < 1 || max > 10000) max = 64;
  CaptureWorker* w = new CaptureWorker(env, netns, what, groups, timeout, max);
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// limitBatchPool(bytes): 0 lifts the limit.
Napi::Value LimitBatchPool(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber() || info[0].As<Napi::Number>().DoubleValue() < 0) {
    Napi::TypeError::New(env, "limitBatchPool(bytes): bytes must be a number >= 0").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  EnvBatchPool(env).SetLimit(size_t(info[0].As<Napi::Number>().DoubleValue()));
  return env.Undefined();
}

}  // namespace nw
