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
//   bench-conn read SECONDS window-sender     window, also reading each datagram's sender
//                                             (msg_name: nl_pid 0) as the native reader does:
//                                             the recvmmsg equal of uring below
//   bench-conn read SECONDS uring             window, but receiving with io_uring: one multishot
//                                             IORING_OP_RECVMSG on a provided buffer ring, the
//                                             receives run (DEFER_TASKRUN) only when the thread
//                                             enters at the window's end; checks each datagram's
//                                             sender (nl_pid 0) as the native reader does; prints
//                                             {"events":N,"enobufs":M,"foreign":F,"truncated":T,
//                                             "rearms":R,"ringEmpty":B,"errors":X,"enters":E,
//                                             "datagrams":D}
//   bench-conn read SECONDS MODE RCVBUF [BUFS] the same with a smaller receive buffer (bytes)
//                                             and, for uring, BUFS ring buffers (a power of 2):
//                                             to check the overrun and re-arm paths
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
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


// --- io_uring receive (raw syscalls, kernel uapi only: liftable into the addon) -------------

enum { U_BUF = 4096, U_CQ = 256 };
// Buffers in the ring (a power of 2): a pass of the multishot takes at most 33 of them and they
// are recycled between passes, so 64 never run out; fewer exercise the ring-empty ENOBUFS.
static unsigned U_BUFS = 64;

struct uring {
  int fd;
  unsigned *sq_tail, *sq_mask, *sq_flags, *cq_head, *cq_tail, *cq_mask;
  struct io_uring_sqe* sqes;
  struct io_uring_cqe* cqes;
  struct io_uring_buf_ring* br;
  char* bufs;
  unsigned short br_tail;    // buffers handed back to the ring (the next tail)
  unsigned short published;  // the tail as last stored for the kernel
  unsigned short consumed;   // buffers the kernel took (CQEs with IORING_CQE_F_BUFFER): its head
};

static int uring_setup(struct uring* u) {
  struct io_uring_params p = {0};
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG | IORING_SETUP_CQSIZE;
  p.cq_entries = U_CQ;
  u->fd = (int)syscall(__NR_io_uring_setup, 4, &p);
  if (u->fd < 0) return perror("io_uring_setup"), -1;
  if (!(p.features & IORING_FEAT_SINGLE_MMAP)) return fprintf(stderr, "no IORING_FEAT_SINGLE_MMAP\n"), -1;
  size_t sqsz = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  size_t cqsz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  size_t rsz = sqsz > cqsz ? sqsz : cqsz;
  char* r = mmap(NULL, rsz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, u->fd, IORING_OFF_SQ_RING);
  u->sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, u->fd, IORING_OFF_SQES);
  if (r == MAP_FAILED || u->sqes == MAP_FAILED) return perror("mmap ring"), -1;
  u->sq_tail = (unsigned*)(r + p.sq_off.tail);
  u->sq_mask = (unsigned*)(r + p.sq_off.ring_mask);
  u->sq_flags = (unsigned*)(r + p.sq_off.flags);
  unsigned* array = (unsigned*)(r + p.sq_off.array);
  for (unsigned i = 0; i < p.sq_entries; i++) array[i] = i;
  u->cq_head = (unsigned*)(r + p.cq_off.head);
  u->cq_tail = (unsigned*)(r + p.cq_off.tail);
  u->cq_mask = (unsigned*)(r + p.cq_off.ring_mask);
  u->cqes = (struct io_uring_cqe*)(r + p.cq_off.cqes);
  // The provided buffer ring: U_BUFS entries of 16 bytes (page aligned), and the buffers.
  u->br = mmap(NULL, U_BUFS * sizeof(struct io_uring_buf), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  u->bufs = mmap(NULL, (size_t)U_BUFS * U_BUF, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (u->br == MAP_FAILED || u->bufs == MAP_FAILED) return perror("mmap buffers"), -1;
  struct io_uring_buf_reg reg = {.ring_addr = (unsigned long)u->br, .ring_entries = U_BUFS, .bgid = 0};
  if (syscall(__NR_io_uring_register, u->fd, IORING_REGISTER_PBUF_RING, &reg, 1) < 0) return perror("IORING_REGISTER_PBUF_RING"), -1;
  for (unsigned short i = 0; i < U_BUFS; i++) {
    struct io_uring_buf* b = &u->br->bufs[i];
    b->addr = (unsigned long)(u->bufs + (size_t)i * U_BUF);
    b->len = U_BUF;
    b->bid = i;
  }
  u->br_tail = U_BUFS;
  __atomic_store_n(&u->br->tail, u->br_tail, __ATOMIC_RELEASE);
  u->published = u->br_tail;
  u->consumed = 0;
  return 0;
}

// What the multishot recvmsg reads: the name (sockaddr_nl) before each payload, no control.
static struct msghdr u_msg = {.msg_namelen = sizeof(struct sockaddr_nl)};

static int uring_arm(struct uring* u, int sock) {
  unsigned tail = *u->sq_tail;
  struct io_uring_sqe* sqe = &u->sqes[tail & *u->sq_mask];
  memset(sqe, 0, sizeof(*sqe));
  sqe->opcode = IORING_OP_RECVMSG;
  sqe->fd = sock;
  sqe->addr = (unsigned long)&u_msg;
  sqe->len = 1;
  sqe->ioprio = IORING_RECV_MULTISHOT;
  sqe->flags = IOSQE_BUFFER_SELECT;
  sqe->buf_group = 0;
  sqe->user_data = 1;
  __atomic_store_n(u->sq_tail, tail + 1, __ATOMIC_RELEASE);
  return (int)syscall(__NR_io_uring_enter, u->fd, 1, 0, 0, NULL, 0);
}

struct u_stats {
  long events, enobufs, foreign, truncated, rearms, enters, datagrams, ring_empty, errors;
};

// Takes every CQE posted: counts each datagram's messages, recycles its buffer; 1 when the
// multishot ended and must be armed again.
static int uring_reap(struct uring* u, struct u_stats* st) {
  unsigned head = *u->cq_head;
  unsigned tail = __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE);
  int rearm = 0;
  const unsigned hdr = sizeof(struct io_uring_recvmsg_out) + sizeof(struct sockaddr_nl);
  for (; head != tail; head++) {
    struct io_uring_cqe* c = &u->cqes[head & *u->cq_mask];
    if (c->flags & IORING_CQE_F_BUFFER) {
      unsigned short bid = c->flags >> IORING_CQE_BUFFER_SHIFT;
      char* b = u->bufs + (size_t)bid * U_BUF;
      struct io_uring_recvmsg_out* o = (struct io_uring_recvmsg_out*)b;
      struct sockaddr_nl* from = (struct sockaddr_nl*)(o + 1);
      u->consumed++;
      st->datagrams++;
      if (c->res >= (int)hdr) {
        if (o->namelen < sizeof(*from) || from->nl_family != AF_NETLINK || from->nl_pid != 0) {
          st->foreign++;
        } else if (o->flags & MSG_TRUNC) {
          st->truncated++;
        } else {
          struct nlmsghdr* h = (struct nlmsghdr*)(b + hdr);
          int len = (int)o->payloadlen;
          for (; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) st->events++;
        }
      }
      struct io_uring_buf* e = &u->br->bufs[u->br_tail & (U_BUFS - 1)];
      e->addr = (unsigned long)b;
      e->len = U_BUF;
      e->bid = bid;
      u->br_tail++;
    }
    if (!(c->flags & IORING_CQE_F_MORE)) {
      rearm = 1;
      if (c->res == -ENOBUFS) {
        // No buffer left, or the socket overran: the kernel takes a buffer only for a datagram
        // it delivers, so its head (consumed) against the tail it saw (published) tells them
        // apart. An overrun pending behind an empty ring is reported after the re-arm.
        if ((unsigned short)(u->published - u->consumed) == 0) st->ring_empty++;
        else st->enobufs++;
      } else if (c->res < 0) {
        st->errors++;
      }
    }
  }
  __atomic_store_n(u->cq_head, head, __ATOMIC_RELEASE);
  __atomic_store_n(&u->br->tail, u->br_tail, __ATOMIC_RELEASE);
  u->published = u->br_tail;
  return rearm;
}

static int uring_enter(struct uring* u, unsigned min_complete, unsigned flags, struct u_stats* st) {
  st->enters++;
  return (int)syscall(__NR_io_uring_enter, u->fd, 0, min_complete, flags, NULL, 0);
}

static int uring_reader(int fd, double seconds) {
  struct uring u;
  if (uring_setup(&u)) return 1;
  if (uring_arm(&u, fd) < 0) return perror("io_uring_enter (arm)"), 1;
  printf("ready\n");
  fflush(stdout);
  struct u_stats st = {0};
  double end = now() + seconds;
  while (!stop && now() < end) {
    // The window's end: the receives queued as task work since the last one run now, a pass
    // of up to 33 datagrams per enter; IORING_SQ_TASKRUN says another pass is pending.
    // A re-arm issues the receive at once: it may take up to 33 datagrams (and end again)
    // before returning, so reap right after it, before the next pass takes more buffers.
    long before = st.datagrams;
    int guard = 0;
    do {
      if (uring_enter(&u, 0, IORING_ENTER_GETEVENTS, &st) < 0 && errno != EINTR) {
        perror("io_uring_enter");
        return 1;
      }
      while (uring_reap(&u, &st) && ++guard < 100000) {
        st.rearms++;
        if (uring_arm(&u, fd) < 0) return perror("io_uring_enter (rearm)"), 1;
      }
    } while ((__atomic_load_n(u.sq_flags, __ATOMIC_ACQUIRE) & IORING_SQ_TASKRUN) && ++guard < 100000);
    if (st.datagrams > before) {
      struct timespec ts = {0, 25 * 1000 * 1000};
      nanosleep(&ts, NULL);
    } else {
      // Quiet: wait for the first completion (≤ 100 ms), as window's blocking recvmmsg does.
      struct __kernel_timespec ts = {0, 100 * 1000 * 1000};
      struct io_uring_getevents_arg arg = {.ts = (unsigned long)&ts};
      st.enters++;
      syscall(__NR_io_uring_enter, u.fd, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg, sizeof(arg));
    }
  }
  printf("{\"events\":%ld,\"enobufs\":%ld,\"foreign\":%ld,\"truncated\":%ld,\"rearms\":%ld,\"ringEmpty\":%ld,\"errors\":%ld,\"enters\":%ld,\"datagrams\":%ld}\n",
         st.events, st.enobufs, st.foreign, st.truncated, st.rearms, st.ring_empty, st.errors, st.enters, st.datagrams);
  return 0;
}

static int reader(double seconds, int all, int window, int sender, int uring, int rcvbuf) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
  struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
  if (fd < 0 || bind(fd, (struct sockaddr*)&sa, sizeof(sa))) return perror("netlink"), 1;
  unsigned groups[] = {NFNLGRP_CONNTRACK_NEW, NFNLGRP_CONNTRACK_DESTROY, NFNLGRP_CONNTRACK_UPDATE};
  for (int i = 0; i < (all ? 3 : 2); i++) setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &groups[i], sizeof(unsigned));
  int rcv = rcvbuf > 0 ? rcvbuf : 64 << 20;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv));
  struct timeval tv = {0, 100000};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (uring) return uring_reader(fd, seconds);
  printf("ready\n");
  fflush(stdout);
  enum { SLOTS = 32, SLOT = 4096 };
  static char buf[SLOTS][SLOT];
  struct mmsghdr m[SLOTS];
  struct iovec iov[SLOTS];
  struct sockaddr_nl from[SLOTS];
  long events = 0, enobufs = 0, foreign = 0;
  double end = now() + seconds;
  while (!stop && now() < end) {
    for (int i = 0; i < SLOTS; i++) {
      iov[i] = (struct iovec){buf[i], SLOT};
      memset(&m[i], 0, sizeof(m[i]));
      m[i].msg_hdr.msg_iov = &iov[i];
      m[i].msg_hdr.msg_iovlen = 1;
      if (sender) {
        m[i].msg_hdr.msg_name = &from[i];
        m[i].msg_hdr.msg_namelen = sizeof(from[i]);
      }
    }
    int n = recvmmsg(fd, m, SLOTS, MSG_WAITFORONE, NULL);
    if (n < 0) {
      if (errno == ENOBUFS) enobufs++;
      continue;
    }
    for (int i = 0; i < n; i++) {
      if (sender && from[i].nl_pid != 0) {
        foreign++;
        continue;
      }
      struct nlmsghdr* h = (struct nlmsghdr*)buf[i];
      int len = (int)m[i].msg_len;
      for (; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) events++;
    }
    if (window && n < SLOTS) {
      struct timespec ts = {0, 25 * 1000 * 1000};
      nanosleep(&ts, NULL);
    }
  }
  printf("{\"events\":%ld,\"enobufs\":%ld,\"foreign\":%ld}\n", events, enobufs, foreign);
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
    // Checks of the overrun and re-arm paths only: a receive buffer (bytes), ring buffers.
    int rcvbuf = argc > 4 ? atoi(argv[4]) : 0;
    unsigned bufs = argc > 5 ? (unsigned)atoi(argv[5]) : 0;
    if (bufs >= 1 && bufs <= 32768 && !(bufs & (bufs - 1))) U_BUFS = bufs;
    int sender = !strcmp(mode, "window-sender");
    return reader(s < max ? s : max, !strcmp(mode, "all"), sender || !strcmp(mode, "window"), sender, !strcmp(mode, "uring"), rcvbuf);
  }
  fprintf(stderr, "usage: bench-conn serve PORT SECONDS | connect DST PORT SECONDS CONC | read SECONDS [all|window|window-sender|uring [RCVBUF [BUFS]]]\n");
  return 2;
}
