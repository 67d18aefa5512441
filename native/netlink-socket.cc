#include "netlink-socket.h"
#include <endian.h>  // htobe16: glibc pulls it in through other headers, musl does not

#include <linux/netfilter/nfnetlink.h>
#include <linux/sock_diag.h>  // SK_MEMINFO_VARS, SK_MEMINFO_DROPS
#include <poll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>

#include "decode.h"

namespace nw {

int NlOpen() {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_NETFILTER);
  if (fd < 0) return -errno;
  sockaddr_nl sa{};
  sa.nl_family = AF_NETLINK;
  if (bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

int NlJoinGroup(int fd, unsigned group) {
  if (setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof(group)) != 0) {
    return errno;
  }
  return 0;
}

int NlLeaveGroup(int fd, unsigned group) {
  if (setsockopt(fd, SOL_NETLINK, NETLINK_DROP_MEMBERSHIP, &group, sizeof(group)) != 0) {
    return errno;
  }
  return 0;
}

int NlSetRcvbuf(int fd, int bytes) {
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes)) != 0) {
    // Without CAP_NET_ADMIN the kernel caps SO_RCVBUF at net.core.rmem_max: still try.
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes)) != 0) return -errno;
  }
  int eff = 0;
  socklen_t len = sizeof(eff);
  if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &eff, &len) != 0) return -errno;
  return eff;
}

nlmsghdr* NlStart(uint8_t* buf, size_t cap, uint16_t type, uint16_t flags, uint8_t family,
                  uint16_t res_id_host, uint32_t seq) {
  const size_t len = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg));
  if (cap < len) return nullptr;
  std::memset(buf, 0, len);
  nlmsghdr* nlh = reinterpret_cast<nlmsghdr*>(buf);
  nlh->nlmsg_len = len;
  nlh->nlmsg_type = type;
  nlh->nlmsg_flags = flags;
  nlh->nlmsg_seq = seq;
  nfgenmsg* g = reinterpret_cast<nfgenmsg*>(buf + NLMSG_HDRLEN);
  g->nfgen_family = family;
  g->version = NFNETLINK_V0;
  g->res_id = htobe16(res_id_host);
  return nlh;
}

bool NlPutAttr(uint8_t* buf, size_t cap, uint16_t type, const void* data, uint16_t len) {
  nlmsghdr* nlh = reinterpret_cast<nlmsghdr*>(buf);
  size_t off = NLMSG_ALIGN(nlh->nlmsg_len);
  size_t need = NLA_ALIGN(NLA_HDRLEN + len);
  if (off + need > cap) return false;
  nlattr* a = reinterpret_cast<nlattr*>(buf + off);
  a->nla_len = static_cast<uint16_t>(NLA_HDRLEN + len);
  a->nla_type = type;
  std::memset(buf + off + NLA_HDRLEN, 0, need - NLA_HDRLEN);
  if (len) std::memcpy(buf + off + NLA_HDRLEN, data, len);
  nlh->nlmsg_len = static_cast<uint32_t>(off + need);
  return true;
}

uint32_t NlRandomSeq() {
  uint32_t v = 0;
  if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != sizeof(v)) {
    // No entropy yet (early boot): still not a constant.
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    v = uint32_t(ts.tv_nsec) ^ uint32_t(ts.tv_sec) * 2654435761u;
  }
  return v;
}

int NlSend(int fd, const nlmsghdr* nlh) {
  sockaddr_nl to{};
  to.nl_family = AF_NETLINK;
  for (int tries = 0; tries < 100; tries++) {
    ssize_t n = sendto(fd, nlh, nlh->nlmsg_len, 0, reinterpret_cast<sockaddr*>(&to), sizeof(to));
    if (n >= 0) return 0;
    if (errno == EINTR) continue;
    if (errno == EAGAIN) {
      pollfd p{fd, POLLOUT, 0};
      poll(&p, 1, 10);
      continue;
    }
    return errno;
  }
  return EAGAIN;
}

namespace {
int64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}
}  // namespace

int64_t NlDrops(int fd) {
  uint32_t mem[SK_MEMINFO_VARS] = {};
  socklen_t len = sizeof(mem);
  if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len) < 0) return -errno;
  if (len < (SK_MEMINFO_DROPS + 1) * sizeof(uint32_t)) return -EPROTO;
  return mem[SK_MEMINFO_DROPS];
}

int NlTransact(int fd, uint32_t seq, int timeout_ms, void (*fn)(void*, const nlmsghdr*),
               void* ctx, uint32_t* foreign) {
  alignas(nlmsghdr) static thread_local uint8_t buf[65536];
  const int64_t deadline = NowMs() + timeout_ms;
  for (;;) {
    int64_t left = deadline - NowMs();
    if (left <= 0) return ETIMEDOUT;
    pollfd p{fd, POLLIN, 0};
    int pr = poll(&p, 1, static_cast<int>(left));
    if (pr < 0 && errno != EINTR) return errno;
    if (pr <= 0) continue;
    sockaddr_nl from{};
    socklen_t flen = sizeof(from);
    ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &flen);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == ENOBUFS) continue;
      return errno;
    }
    if (!NlFromKernel(from, flen)) {
      if (foreign) ++*foreign;
      continue;
    }
    int end = -1;
    DecodeCounters c;
    WalkDatagram(buf, size_t(n), c, [&](const nlmsghdr* nlh) {
      if (nlh->nlmsg_seq != seq) return true;
      if (EndOfReply(nlh, &end)) return false;
      if (fn) fn(ctx, nlh);
      return true;
    });
    if (end >= 0) return end;
    if (c.errors) return EPROTO;
  }
}

}  // namespace nw
