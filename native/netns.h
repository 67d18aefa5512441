// Doing things inside another network namespace without moving Node: a short-lived helper
// thread joins the namespace (setns affects only the calling thread), runs the work and exits.
// Sockets and /proc/sys files opened there keep that namespace for their lifetime.
#pragma once
#include <string>

namespace nw {

struct NsError {
  int err = 0;                 // errno, 0 = ok
  const char* syscall = "";    // which step failed
};

/** Runs fn() (returning an errno, 0 ok, and setting *syscall on failure) in netns_path's
 *  network namespace, or on the calling thread when netns_path is empty. */
template <typename Fn>
NsError RunInNetns(const std::string& netns_path, Fn&& fn);

NsError RunInNetnsImpl(const std::string& netns_path, int (*fn)(void*, const char**), void* arg);

template <typename Fn>
NsError RunInNetns(const std::string& netns_path, Fn&& fn) {
  auto tramp = [](void* p, const char** sc) -> int { return (*static_cast<Fn*>(p))(sc); };
  return RunInNetnsImpl(netns_path, tramp, &fn);
}

}  // namespace nw
