// Full-TCP-connection load and a bare conntrack reader for scripts/bench-conn.mjs. Every loop is
// bounded by a count and a deadline; run inside lab namespaces only.
//   bench-conn serve PORT SECONDS             accept, read to EOF, close (the server's FIN)
//   bench-conn connect DST PORT SECONDS CONC  keep CONC connects in flight for SECONDS: connect,
//                                             close once established (client FIN), repeat;
//                                             prints {"connections":N,"failed":M}
//   bench-conn read SECONDS [all|window]      bare reader: NEW+DESTROY (all: +UPDATE), 64 MiB
//                                             buffer, recvmmsg; prints {"events":N,"enobufs":M}
//                                             on SIGTERM or at the deadline. window: after each
//                                             drain wait 25 ms (serve's coalescing, nothing else:
//                                             the kernel's own cost of handing over the events)
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static volatile sig_atomic_t stop;
static void on_term(int sig) {
  (void)sig;
  stop = 1;
}

static int serve(int port, double seconds) {
  int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  if (bind(l, (struct sockaddr*)&a, sizeof(a)) || listen(l, 4096)) return perror("listen"), 1;
  int ep = epoll_create1(0);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = l};
  epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
  printf("ready\n");
  fflush(stdout);
  double end = now() + seconds;
  struct epoll_event evs[256];
  char buf[512];
  while (!stop && now() < end) {
    int n = epoll_wait(ep, evs, 256, 100);
    for (int i = 0; i < n; i++) {
      int fd = evs[i].data.fd;
      if (fd == l) {
        for (int k = 0; k < 256; k++) {
          int c = accept4(l, NULL, NULL, SOCK_NONBLOCK);
          if (c < 0) break;
          struct epoll_event ce = {.events = EPOLLIN | EPOLLRDHUP, .data.fd = c};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce);
        }
      } else {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r == 0 || (r < 0 && errno != EAGAIN)) close(fd);  // EOF: our FIN back
      }
    }
  }
  return 0;
}

static int open_conn(int ep, struct sockaddr_in* to) {
  int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (s < 0) return -1;
  if (connect(s, (struct sockaddr*)to, sizeof(*to)) < 0 && errno != EINPROGRESS) {
    close(s);
    return -1;
  }
  struct epoll_event ev = {.events = EPOLLOUT, .data.fd = s};
  epoll_ctl(ep, EPOLL_CTL_ADD, s, &ev);
  return s;
}

static int connector(const char* dst, int port, double seconds, int conc) {
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(port)};
  if (!inet_aton(dst, &to.sin_addr)) return 2;
  int ep = epoll_create1(0);
  long ok = 0, failed = 0;
  int inflight = 0;
  double end = now() + seconds;
  for (int i = 0; i < conc; i++)
    if (open_conn(ep, &to) >= 0) inflight++;
  struct epoll_event evs[256];
  while (!stop && now() < end) {
    int n = epoll_wait(ep, evs, 256, 100);
    for (int i = 0; i < n; i++) {
      int s = evs[i].data.fd;
      int err = 0;
      socklen_t len = sizeof(err);
      getsockopt(s, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err) failed++;
      else ok++;
      close(s);  // established: our FIN; the server answers with its own
      inflight--;
      if (open_conn(ep, &to) >= 0) inflight++;
    }
    if (inflight < conc && open_conn(ep, &to) >= 0) inflight++;
  }
  printf("{\"connections\":%ld,\"failed\":%ld}\n", ok, failed);
  return 0;
}

static int reader(double seconds, int all, int window) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  if (fd < 0 || bind(fd, (struct sockaddr*)&sa, sizeof(sa))) return perror("netlink"), 1;
  unsigned groups[] = {NFNLGRP_CONNTRACK_NEW, NFNLGRP_CONNTRACK_DESTROY, NFNLGRP_CONNTRACK_UPDATE};
  for (int i = 0; i < (all ? 3 : 2); i++) setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &groups[i], sizeof(unsigned));
  int rcv = 64 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv));
  struct timeval tv = {0, 100000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  printf("ready\n");
  fflush(stdout);
  enum { SLOTS = 32, SLOT = 4096 };
  static char buf[SLOTS][SLOT];
  struct mmsghdr m[SLOTS];
  struct iovec iov[SLOTS];
  long events = 0, enobufs = 0;
  double end = now() + seconds;
  while (!stop && now() < end) {
    for (int i = 0; i < SLOTS; i++) {
      iov[i] = (struct iovec){buf[i], SLOT};
      memset(&m[i], 0, sizeof(m[i]));
      m[i].msg_hdr.msg_iov = &iov[i];
      m[i].msg_hdr.msg_iovlen = 1;
    }
    int n = recvmmsg(fd, m, SLOTS, MSG_WAITFORONE, NULL);
    if (n < 0) {
      if (errno == ENOBUFS) enobufs++;
      continue;
    }
    for (int i = 0; i < n; i++) {
      struct nlmsghdr* h = (struct nlmsghdr*)buf[i];
      int len = (int)m[i].msg_len;
      for (; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) events++;
    }
    if (window && n < SLOTS) {
      struct timespec ts = {0, 25 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
  }
  printf("{\"events\":%ld,\"enobufs\":%ld}\n", events, enobufs);
  return 0;
}

int main(int argc, char** argv) {
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);
  signal(SIGPIPE, SIG_IGN);
  const double max = 120;  // no mode runs longer, whatever it is told
  if (argc >= 4 && !strcmp(argv[1], "serve")) {
    double s = atof(argv[3]);
    return serve(atoi(argv[2]), s < max ? s : max);
  }
  if (argc >= 6 && !strcmp(argv[1], "connect")) {
    double s = atof(argv[4]);
    int conc = atoi(argv[5]);
    return connector(argv[2], atoi(argv[3]), s < max ? s : max, conc > 0 && conc <= 4096 ? conc : 64);
  }
  if (argc >= 3 && !strcmp(argv[1], "read")) {
    double s = atof(argv[2]);
    const char* mode = argc > 3 ? argv[3] : "";
    return reader(s < max ? s : max, !strcmp(mode, "all"), !strcmp(mode, "window"));
  }
  fprintf(stderr, "usage: bench-conn serve PORT SECONDS | connect DST PORT SECONDS CONC | read SECONDS [all|window]\n");
  return 2;
}
