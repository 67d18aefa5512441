// kernelFacts(): one-shot reads of a namespace's ruleset (nf_tables dumps, iptables-legacy
// blobs), interfaces and addresses (rtnetlink), sockets (sock_diag) and sysctls, on short-lived
// sockets opened in the namespace by a helper thread (netns.h), off the JS thread (a worker).
// The result is one packed buffer of items (facts-writer.h) that facts-codec.ts decodes.
//
// watchKernel(): a socket per change source (NFNLGRP_NFTABLES; RTMGRP_IPV4/6_IFADDR and
// RTMGRP_LINK) polled on the libuv loop; every readable burst is drained and reported once
// as a kind ('ruleset' | 'addresses'), the consumer debounces and re-reads.
//
// Every socket here trusts only the kernel: datagrams whose sender nl_pid is not 0 are dropped,
// and requests carry random sequence numbers.
#include <fcntl.h>
#include <netinet/in.h>  // before the linux/ headers, which then skip their own copies
#include <linux/inet_diag.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <napi.h>
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "facts-writer.h"
#include "ipt-legacy.h"
#include "kernel-facts.h"
#include "netlink-socket.h"
#include "netns.h"

namespace nw {
namespace {

constexpr int kTimeoutMs = 3000;
constexpr size_t kRecvBuf = 256 * 1024;

int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

/** A blocking-with-timeout netlink socket of one protocol; -errno on failure. */
int OpenNl(int proto, uint32_t groups = 0) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, proto);
  if (fd < 0) return -errno;
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  sa.nl_groups = groups;
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

struct DumpResult {
  int err = 0;          // errno (positive), 0 ok
  bool interrupted = false;  // NLM_F_DUMP_INTR: the dump saw a change; read it again
};

/**
 * Sends req (a complete message; its seq is set here) and appends every reply message of
 * that seq to out, until NLMSG_DONE or an error. Datagrams not from the kernel are dropped.
 */
DumpResult Dump(int fd, nlmsghdr* req, std::vector<uint8_t>* out, std::vector<uint8_t>& buf) {
  DumpResult r;
  const uint32_t seq = NlRandomSeq();
  req->nlmsg_seq = seq;
  sockaddr_nl to{};
  to.nl_family = AF_NETLINK;
  if (sendto(fd, req, req->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&to), sizeof(to)) < 0) {
    r.err = errno;
    return r;
  }
  const int64_t deadline = NowMs() + kTimeoutMs;
  for (;;) {
    int64_t left = deadline - NowMs();
    if (left <= 0) return r.err = ETIMEDOUT, r;
    pollfd p{fd, POLLIN, 0};
    int pr = poll(&p, 1, int(left));
    if (pr < 0 && errno != EINTR) return r.err = errno, r;
    if (pr <= 0) continue;
    sockaddr_nl from{};
    socklen_t flen = sizeof(from);
    ssize_t n = recvfrom(fd, buf.data(), buf.size(), MSG_TRUNC, reinterpret_cast<sockaddr*>(&from), &flen);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return r.err = errno, r;  // ENOBUFS included: the dump lost messages
    }
    if (from.nl_pid != 0) continue;  // not from the kernel
    if (size_t(n) > buf.size()) return r.err = EMSGSIZE, r;
    size_t off = 0;
    const size_t len = size_t(n);
    while (len - off >= NLMSG_HDRLEN) {
      nlmsghdr h;
      std::memcpy(&h, buf.data() + off, sizeof(h));
      if (h.nlmsg_len < NLMSG_HDRLEN || h.nlmsg_len > len - off) return r.err = EPROTO, r;
      const uint8_t* msg = buf.data() + off;
      size_t step = NLMSG_ALIGN(h.nlmsg_len);
      off = step > len - off ? len : off + step;
      if (h.nlmsg_seq != seq) continue;
      if (h.nlmsg_flags & NLM_F_DUMP_INTR) r.interrupted = true;
      if (h.nlmsg_type == NLMSG_DONE || h.nlmsg_type == NLMSG_ERROR) {
        int code = 0;
        if (h.nlmsg_len >= NLMSG_HDRLEN + sizeof(int)) std::memcpy(&code, msg + NLMSG_HDRLEN, sizeof(int));
        r.err = code < 0 ? -code : 0;
        return r;
      }
      out->insert(out->end(), msg, msg + h.nlmsg_len);
    }
  }
}

/** Builds a netlink request: header + fixed part (family header) + optional string attrs. */
struct Req {
  alignas(nlmsghdr) uint8_t b[1024] = {};
  nlmsghdr* h() { return reinterpret_cast<nlmsghdr*>(b); }
  Req(uint16_t type, uint16_t flags, const void* fixed, size_t flen) {
    h()->nlmsg_len = uint32_t(NLMSG_HDRLEN + NLMSG_ALIGN(flen));
    h()->nlmsg_type = type;
    h()->nlmsg_flags = flags;
    std::memcpy(b + NLMSG_HDRLEN, fixed, flen);
  }
  bool Str(uint16_t type, const std::string& s) {
    size_t off = NLMSG_ALIGN(h()->nlmsg_len);
    size_t alen = NLA_HDRLEN + s.size() + 1;
    if (off + NLA_ALIGN(alen) > sizeof(b)) return false;
    nlattr a{uint16_t(alen), type};
    std::memcpy(b + off, &a, sizeof(a));
    std::memcpy(b + off + NLA_HDRLEN, s.c_str(), s.size() + 1);
    h()->nlmsg_len = uint32_t(off + NLA_ALIGN(alen));
    return true;
  }
};

nfgenmsg NfGen(uint8_t family) {
  nfgenmsg g{};
  g.nfgen_family = family;
  g.version = NFNETLINK_V0;
  return g;
}

/** The (family, table, set) of the lookups capacity needs, in the items written from `from` on. */
std::set<std::tuple<uint8_t, std::string, std::string>> LookupsIn(const std::vector<uint8_t>& d, size_t from) {
  std::set<std::tuple<uint8_t, std::string, std::string>> out;
  size_t off = from;
  while (d.size() - off >= 4) {
    uint16_t type, len;
    std::memcpy(&type, d.data() + off, 2);
    std::memcpy(&len, d.data() + off + 2, 2);
    const uint8_t* p = d.data() + off + 4;
    // Only what capacity needs: maps (NAT targets) and protocol sets; an address set (a
    // blocklist of 100k elements) is never read.
    const bool wanted = len > 6 && (p[1] == 1 || (p[2] == kSrcMeta && p[3] == NFT_META_L4PROTO) ||
                                     (p[2] == kSrcPayload && (p[3] == 9 || p[3] == 6)));
    if (type == kItemLookup && wanted) {
      const char* s = reinterpret_cast<const char*>(p + 4);
      size_t tl = strnlen(s, len - 4);
      if (4 + tl + 1 < len) {
        const char* set = s + tl + 1;
        out.emplace(p[0], std::string(s, tl), std::string(set, strnlen(set, len - 4 - tl - 1)));
      }
    }
    off += 4 + len + (4 - len % 4) % 4;
  }
  return out;
}

void ReadNft(FactsWriter& w, std::vector<uint8_t>& buf) {
  int fd = OpenNl(NETLINK_NETFILTER);
  if (fd < 0) return w.Error(kSecNft, -fd, "socket");
  const size_t start = w.Size();
  for (int attempt = 0;; attempt++) {
    std::vector<uint8_t> msgs;
    bool intr = false;
    int err = 0;
    const char* what = "";
    const uint16_t types[3] = {NFT_MSG_GETTABLE, NFT_MSG_GETCHAIN, NFT_MSG_GETRULE};
    const char* names[3] = {"gettable", "getchain", "getrule"};
    for (int i = 0; i < 3 && !err; i++) {
      nfgenmsg g = NfGen(NFPROTO_UNSPEC);
      Req q(uint16_t((NFNL_SUBSYS_NFTABLES << 8) | types[i]), NLM_F_REQUEST | NLM_F_DUMP, &g, sizeof(g));
      DumpResult r = Dump(fd, q.h(), &msgs, buf);
      err = r.err;
      intr |= r.interrupted;
      what = names[i];
    }
    if (!err) {
      w.Data().resize(start);
      w.Capture(kSecNft, msgs.data(), msgs.size());
      w.DecodeErrors(kSecNft, DecodeNftMessages(msgs.data(), msgs.size(), w));
      // Set and map contents the rules look up (protocol sets, snat address maps).
      std::vector<uint8_t> elems;
      for (const auto& [family, table, set] : LookupsIn(w.Data(), start)) {
        nfgenmsg g = NfGen(family);
        Req q(uint16_t((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETSETELEM), NLM_F_REQUEST | NLM_F_DUMP, &g, sizeof(g));
        if (!q.Str(NFTA_SET_ELEM_LIST_TABLE, table) || !q.Str(NFTA_SET_ELEM_LIST_SET, set)) continue;
        DumpResult r = Dump(fd, q.h(), &elems, buf);
        intr |= r.interrupted;
        if (r.err && r.err != ENOENT) {
          err = r.err;
          what = "getsetelem";
          break;
        }
      }
      if (!err) {
        w.Capture(kSecNft, elems.data(), elems.size());
        w.DecodeErrors(kSecNft, DecodeNftMessages(elems.data(), elems.size(), w));
      }
    }
    if (err || !intr || attempt == 2) {
      if (err) {
        w.Data().resize(start);
        w.Error(kSecNft, err, what);
      }
      break;
    }
  }
  close(fd);
}

void ReadRtnl(FactsWriter& w, std::vector<uint8_t>& buf) {
  int fd = OpenNl(NETLINK_ROUTE);
  if (fd < 0) return w.Error(kSecRtnl, -fd, "socket");
  std::vector<uint8_t> msgs;
  ifinfomsg ifi{};
  ifi.ifi_family = AF_UNSPEC;
  Req ql(RTM_GETLINK, NLM_F_REQUEST | NLM_F_DUMP, &ifi, sizeof(ifi));
  DumpResult r = Dump(fd, ql.h(), &msgs, buf);
  if (!r.err) {
    ifaddrmsg ifa{};
    ifa.ifa_family = AF_UNSPEC;
    Req qa(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, &ifa, sizeof(ifa));
    r = Dump(fd, qa.h(), &msgs, buf);
  }
  close(fd);
  if (r.err) return w.Error(kSecRtnl, r.err, "dump");
  w.Capture(kSecRtnl, msgs.data(), msgs.size());
  w.DecodeErrors(kSecRtnl, DecodeRtnlMessages(msgs.data(), msgs.size(), w));
}

void ReadDiag(FactsWriter& w, std::vector<uint8_t>& buf) {
  int fd = OpenNl(NETLINK_SOCK_DIAG);
  if (fd < 0) return w.Error(kSecDiag, -fd, "socket");
  uint32_t errors = 0;
  FactsWriter sockets;  // one item per socket; only their counts go out (100k sockets → a few keys)
  for (uint8_t family : {uint8_t(AF_INET), uint8_t(AF_INET6)}) {
    for (uint8_t proto : {uint8_t(IPPROTO_TCP), uint8_t(IPPROTO_UDP)}) {
      inet_diag_req_v2 req{};
      req.sdiag_family = family;
      req.sdiag_protocol = proto;
      req.idiag_states = ~0u;  // every state, TIME_WAIT included
      Req q(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, &req, sizeof(req));
      std::vector<uint8_t> msgs;
      DumpResult r = Dump(fd, q.h(), &msgs, buf);
      if (r.err) {
        // No IPv6 in this kernel / namespace: nothing to count there.
        if (!(family == AF_INET6 && (r.err == ENOENT || r.err == EAFNOSUPPORT))) w.Error(kSecDiag, r.err, "dump");
        continue;
      }
      w.Capture(uint8_t(proto == IPPROTO_UDP ? kSecDiag + 16 : kSecDiag), msgs.data(), msgs.size());
      errors += DecodeInetDiagMessages(proto, msgs.data(), msgs.size(), sockets);
    }
  }
  close(fd);
  CountSockets(sockets.Data().data(), sockets.Size(), w);
  w.DecodeErrors(kSecDiag, errors);
}

void ReadSysctls(FactsWriter& w, const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    std::string path = "/proc/sys/" + name;
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    char val[512];
    ssize_t n = fd >= 0 ? read(fd, val, sizeof(val)) : -1;
    int err = errno;
    if (fd >= 0) close(fd);
    if (n < 0) {
      if (err != ENOENT) w.Error(kSecSysctl, err, name.c_str());
      continue;
    }
    w.Begin(kItemSysctl);
    w.StrZ(name.c_str(), 128);
    w.Raw(val, size_t(n));
    w.End();
  }
}

/** `net/...` paths only: a name is never a way to read another file. */
bool SafeSysctl(const std::string& s) {
  if (s.size() > 120 || s.compare(0, 4, "net/") != 0 || s.find("..") != std::string::npos) return false;
  for (char c : s)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '/' || c == '.' || c == '-')) return false;
  return true;
}

struct FactsRequest {
  std::string netns;
  bool nft = false, legacy = false, rtnl = false, diag = false, raw = false;
  std::vector<std::string> sysctls;
};

class FactsWorker : public Napi::AsyncWorker {
 public:
  FactsWorker(Napi::Env env, FactsRequest req)
      : Napi::AsyncWorker(env, "natwatch-facts"), req_(std::move(req)), deferred_(Napi::Promise::Deferred::New(env)) {}
  Napi::Promise Promise() { return deferred_.Promise(); }

  void Execute() override {
    std::vector<uint8_t> buf(kRecvBuf);
    FactsWriter& w = out_;
    w.capture = req_.raw;
    ns_ = RunInNetns(req_.netns, [&](const char**) -> int {
      if (req_.nft) ReadNft(w, buf);
      if (req_.legacy) {
        ReadIptLegacy(4, w);
        ReadIptLegacy(6, w);
      }
      if (req_.rtnl) ReadRtnl(w, buf);
      if (req_.diag) ReadDiag(w, buf);
      if (!req_.sysctls.empty()) ReadSysctls(w, req_.sysctls);
      return 0;
    });
  }
  void OnOK() override {
    Napi::Env env = Env();
    if (ns_.err) {
      Napi::Error e = Napi::Error::New(env, std::string(ns_.syscall) + ": " + std::strerror(ns_.err));
      e.Set("errno", Napi::Number::New(env, ns_.err));
      e.Set("syscall", Napi::String::New(env, ns_.syscall));
      deferred_.Reject(e.Value());
      return;
    }
    const auto& d = req_.raw ? out_.captured : out_.Data();
    deferred_.Resolve(Napi::Buffer<uint8_t>::Copy(env, d.data(), d.size()));
  }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  FactsRequest req_;
  Napi::Promise::Deferred deferred_;
  FactsWriter out_;
  NsError ns_;
};

// ---- change notifications ----

struct Watch;

struct PollSlot {
  uv_poll_t poll;
  Watch* owner;
  int fd = -1;
  const char* kind;
  bool open = false;
};

struct Watch {
  Napi::Env env;
  Napi::FunctionReference cb;
  PollSlot slots[2];
  int pending_close = 0;
  bool closed = false;
  bool torn_down = false;  // the environment is going away: free once the handles closed
  std::vector<uint8_t> buf = std::vector<uint8_t>(65536);
  explicit Watch(Napi::Env e) : env(e) {}
};

// The JS close() function keeps a pointer to the Watch, so it lives until the environment's
// teardown; close() only stops it and releases its sockets and buffer.
void FreeIfDone(Watch* w) {
  if (w->torn_down && w->pending_close == 0) delete w;
}

void CloseWatch(Watch* w) {
  if (w->closed) return;
  w->closed = true;
  w->cb.Reset();
  w->buf = std::vector<uint8_t>();
  for (PollSlot& s : w->slots) {
    if (!s.open) continue;
    s.open = false;
    uv_poll_stop(&s.poll);
    w->pending_close++;
    uv_close(reinterpret_cast<uv_handle_t*>(&s.poll), [](uv_handle_t* h) {
      PollSlot* s = static_cast<PollSlot*>(h->data);
      close(s->fd);
      s->fd = -1;
      s->owner->pending_close--;
      FreeIfDone(s->owner);
    });
  }
  FreeIfDone(w);
}

void CleanupWatch(void* p) {
  Watch* w = static_cast<Watch*>(p);
  w->torn_down = true;
  CloseWatch(w);
  FreeIfDone(w);
}

void OnReadable(uv_poll_t* h, int status, int) {
  PollSlot* s = static_cast<PollSlot*>(h->data);
  Watch* w = s->owner;
  if (w->closed) return;
  // Drain everything queued: one report per burst. ENOBUFS (overflow) is a change too.
  bool changed = status < 0;
  for (int i = 0; i < 1024; i++) {
    sockaddr_nl from{};
    socklen_t flen = sizeof(from);
    ssize_t n = recvfrom(s->fd, w->buf.data(), w->buf.size(), MSG_DONTWAIT, reinterpret_cast<sockaddr*>(&from), &flen);
    if (n < 0) {
      if (errno == ENOBUFS) changed = true;
      if (errno == EINTR || errno == ENOBUFS) continue;
      break;
    }
    if (from.nl_pid != 0) continue;  // not from the kernel
    changed = true;
  }
  if (!changed || w->cb.IsEmpty()) return;
  Napi::HandleScope scope(w->env);
  // MakeCallback: runs the microtasks the callback queues (it starts async re-reads).
  w->cb.MakeCallback(w->env.Global(), {Napi::String::New(w->env, s->kind)});
}

Napi::Value CloseWatchJs(const Napi::CallbackInfo& info) {
  Watch* w = static_cast<Watch*>(info.Data());
  if (w) CloseWatch(w);
  return info.Env().Undefined();
}

void ThrowErrno(Napi::Env env, int err, const char* syscall) {
  Napi::Error e = Napi::Error::New(env, std::string(syscall) + ": " + std::strerror(err));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  e.ThrowAsJavaScriptException();
}

}  // namespace

// kernelFacts({netns, nft, legacy, rtnl, diag, sysctls, raw}) → Promise<Buffer> (raw: the
// kernel bytes the decoders saw, FactsWriter::Capture, instead of the items)
Napi::Value KernelFacts(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) {
    Napi::TypeError::New(env, "kernelFacts(options)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object o = info[0].As<Napi::Object>();
  FactsRequest req;
  Napi::Value ns = o.Get("netns");
  if (ns.IsString()) req.netns = ns.As<Napi::String>().Utf8Value();
  auto flag = [&](const char* k) {
    Napi::Value v = o.Get(k);
    return v.IsBoolean() && v.As<Napi::Boolean>().Value();
  };
  req.nft = flag("nft");
  req.legacy = flag("legacy");
  req.rtnl = flag("rtnl");
  req.diag = flag("diag");
  req.raw = flag("raw");
  Napi::Value sys = o.Get("sysctls");
  if (sys.IsArray()) {
    Napi::Array a = sys.As<Napi::Array>();
    for (uint32_t i = 0; i < a.Length() && i < 64; i++) {
      Napi::Value v = a.Get(i);
      if (!v.IsString()) continue;
      std::string s = v.As<Napi::String>().Utf8Value();
      if (!SafeSysctl(s)) {
        Napi::TypeError::New(env, "kernelFacts: not a net/ sysctl name: " + s).ThrowAsJavaScriptException();
        return env.Undefined();
      }
      req.sysctls.push_back(std::move(s));
    }
  }
  FactsWorker* w = new FactsWorker(env, std::move(req));
  Napi::Promise p = w->Promise();
  w->Queue();
  return p;
}

// watchKernel({netns, ruleset, addresses}, onChange(kind)) → {close()}
Napi::Value WatchKernel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsObject() || !info[1].IsFunction()) {
    Napi::TypeError::New(env, "watchKernel(options, onChange)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object o = info[0].As<Napi::Object>();
  std::string netns;
  Napi::Value ns = o.Get("netns");
  if (ns.IsString()) netns = ns.As<Napi::String>().Utf8Value();
  Napi::Value rv = o.Get("ruleset"), av = o.Get("addresses");
  const bool want_rules = rv.IsBoolean() && rv.As<Napi::Boolean>().Value();
  const bool want_addrs = av.IsBoolean() && av.As<Napi::Boolean>().Value();
  int fds[2] = {-1, -1};
  NsError r = RunInNetns(netns, [&](const char** sc) -> int {
    if (want_rules) {
      int fd = OpenNl(NETLINK_NETFILTER);
      if (fd < 0) return *sc = "socket", -fd;
      fds[0] = fd;
      unsigned g = NFNLGRP_NFTABLES;
      if (setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &g, sizeof(g)) != 0) return *sc = "membership", errno;
    }
    if (want_addrs) {
      int fd = OpenNl(NETLINK_ROUTE, RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_LINK);
      if (fd < 0) return *sc = "socket", -fd;
      fds[1] = fd;
    }
    return 0;
  });
  if (r.err) {
    for (int fd : fds)
      if (fd >= 0) close(fd);
    ThrowErrno(env, r.err, r.syscall);
    return env.Undefined();
  }
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) {
    for (int fd : fds)
      if (fd >= 0) close(fd);
    Napi::Error::New(env, "watchKernel: no event loop").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Watch* w = new Watch(env);
  w->cb = Napi::Persistent(info[1].As<Napi::Function>());
  const char* kinds[2] = {"ruleset", "addresses"};
  for (int i = 0; i < 2; i++) {
    PollSlot& s = w->slots[i];
    s.owner = w;
    s.kind = kinds[i];
    s.fd = fds[i];
    if (s.fd < 0) continue;
    if (uv_poll_init(loop, &s.poll, s.fd) != 0) {
      close(s.fd);
      s.fd = -1;
      continue;
    }
    s.poll.data = &s;
    s.open = true;
    uv_poll_start(&s.poll, UV_READABLE, OnReadable);
    // A watcher alone never keeps the process alive: the daemon's own timers do.
    uv_unref(reinterpret_cast<uv_handle_t*>(&s.poll));
  }
  napi_add_env_cleanup_hook(env, CleanupWatch, w);
  Napi::Object handle = Napi::Object::New(env);
  handle.Set("close", Napi::Function::New(env, CloseWatchJs, "close", w));
  return handle;
}

}  // namespace nw
