#include "netns.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <cerrno>

namespace nw {
namespace {

struct Job {
  const std::string* path;
  int (*fn)(void*, const char**);
  void* arg;
  NsError out;
};

void* HelperMain(void* p) {
  Job* j = static_cast<Job*>(p);
  pthread_setname_np(pthread_self(), "natwatch-netns");
  int fd = open(j->path->c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    j->out = {errno, "open"};
    return nullptr;
  }
  if (setns(fd, CLONE_NEWNET) != 0) {
    j->out = {errno, "setns"};  // EINVAL: not a network namespace; EPERM: no CAP_SYS_ADMIN
    close(fd);
    return nullptr;
  }
  close(fd);
  j->out.err = j->fn(j->arg, &j->out.syscall);
  return nullptr;
}

}  // namespace

NsError RunInNetnsImpl(const std::string& netns_path, int (*fn)(void*, const char**), void* arg) {
  Job job{&netns_path, fn, arg, {}};
  if (netns_path.empty()) {
    job.out.err = fn(arg, &job.out.syscall);
    return job.out;
  }
  pthread_t t;
  int rc = pthread_create(&t, nullptr, HelperMain, &job);
  if (rc != 0) return {rc, "pthread_create"};
  pthread_join(t, nullptr);
  return job.out;
}

}  // namespace nw
