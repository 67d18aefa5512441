#include "proc-net.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "netns.h"

namespace nw {
namespace {

// /proc/net/netlink: every netlink socket (port id, groups, drops, inode);
// /proc/net/netfilter/nfnetlink_log: bound NFLOG groups and the holder's port id.
const char* const kAllowed[] = {"netlink", "netfilter/nfnetlink_log"};
constexpr size_t kMaxBytes = 4 << 20;  // a netlink table of tens of thousands of sockets

bool Allowed(const std::string& n) {
  for (const char* a : kAllowed) {
    if (n == a) return true;
  }
  return false;
}

}  // namespace

Napi::Value ReadProcNet(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !(info[0].IsString() || info[0].IsNull()) || !info[1].IsArray()) {
    Napi::TypeError::New(env, "readProcNet(netns, names)").ThrowAsJavaScriptException();
    return env.Undefined();
  }
  std::string netns = info[0].IsString() ? info[0].As<Napi::String>().Utf8Value() : "";
  Napi::Array a = info[1].As<Napi::Array>();
  std::vector<std::string> names;
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value v = a.Get(i);
    if (!v.IsString() || !Allowed(v.As<Napi::String>().Utf8Value())) {
      Napi::TypeError::New(env, "readProcNet: not an allowed /proc/net name").ThrowAsJavaScriptException();
      return env.Undefined();
    }
    names.push_back(v.As<Napi::String>().Utf8Value());
  }
  std::vector<std::string> text(names.size());
  std::vector<bool> ok(names.size(), false);
  NsError r = RunInNetns(netns, [&](const char**) -> int {
    for (size_t i = 0; i < names.size(); i++) {
      int fd = open(("/proc/thread-self/net/" + names[i]).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) continue;  // e.g. nfnetlink_log not loaded: no file
      char buf[65536];
      ssize_t n;
      while ((n = read(fd, buf, sizeof(buf))) > 0 && text[i].size() < kMaxBytes) text[i].append(buf, size_t(n));
      ok[i] = n == 0;
      close(fd);
    }
    return 0;
  });
  if (r.err) {
    Napi::Error e = Napi::Error::New(env, std::string(r.syscall) + ": " + std::strerror(r.err));
    e.Set("errno", Napi::Number::New(env, r.err));
    e.Set("syscall", Napi::String::New(env, r.syscall));
    e.ThrowAsJavaScriptException();
    return env.Undefined();
  }
  Napi::Object out = Napi::Object::New(env);
  for (size_t i = 0; i < names.size(); i++) {
    out.Set(names[i], ok[i] ? Napi::Value(Napi::String::New(env, text[i])) : env.Null());
  }
  return out;
}

}  // namespace nw
