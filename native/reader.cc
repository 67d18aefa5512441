#include "reader.h"

#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "netlink-socket.h"

namespace nw {
namespace {

constexpr size_t kRxBuf = 1 << 17;  // a dump datagram is at most 32 KiB on current kernels
constexpr int kMaxDatagramsPerWake = 512;  // fairness between sockets and timely flushes
constexpr int kSlots = 32;                 // event datagrams per recvmmsg
constexpr size_t kSlotSize = kRxBuf / kSlots;  // 4 KiB: an event message is ≈ 150–400 bytes
constexpr long kQueueRetryNs = 200 * 1000;     // 0.2 ms between hand-over retries while JS is behind

int64_t MonoMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

double WallMs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return double(ts.tv_sec) * 1000.0 + double(ts.tv_nsec / 1000000);
}

/**
 * One datagram into rxbuf: its length, 0 when it did not come from the kernel (dropped and
 * counted in loss.foreign; nothing a process writes to our port id is trusted), -1 with errno.
 * *flags gets msg_flags (MSG_TRUNC).
 */
ssize_t RecvFromKernel(int fd, uint8_t* buf, size_t cap, int* flags, LossCounters& loss) {
  sockaddr_nl from{};
  iovec iov{buf, cap};
  msghdr m{};
  m.msg_name = &from;
  m.msg_namelen = sizeof(from);
  m.msg_iov = &iov;
  m.msg_iovlen = 1;
  ssize_t n = recvmsg(fd, &m, MSG_DONTWAIT);
  if (n < 0) return -1;
  *flags = m.msg_flags;
  if (!NlFromKernel(from, m.msg_namelen)) {
    loss.foreign++;
    return 0;
  }
  return n;
}

}  // namespace

void CallJsBatch(Napi::Env env, Napi::Function fn, std::nullptr_t*, uint8_t* data) {
  if (env == nullptr || fn.IsEmpty()) {  // environment tearing down: just free
    std::free(data);
    return;
  }
  uint32_t count;
  uint32_t rsize;
  std::memcpy(&count, data + kHdrCount, 4);
  std::memcpy(&rsize, data + kHdrRecordSize, 4);
  size_t size = kHeaderSize + size_t(count) * rsize;
  Napi::Buffer<uint8_t> buf = Napi::Buffer<uint8_t>::Copy(env, data, size);
  std::free(data);
  fn.Call({buf});
  // The JS side catches and counts its own errors; never let one linger into the next call.
  if (env.IsExceptionPending()) env.GetAndClearPendingException();
}

Reader::Reader(ReaderFds fds, ReaderOptions opts, BatchTsfn tsfn)
    : fds_(fds),
      opts_(opts),
      tsfn_(tsfn),
      ct_(kKindConntrack, kCtRecordSize, opts.batch_records),
      slot_(opts.slot_bytes >= 64 && opts.slot_bytes <= kSlotSize ? opts.slot_bytes : kSlotSize),
      nl_(kKindNflog, kNlRecordSize, opts.batch_records),
      ifnames_(fds.ifname) {}

Reader::~Reader() {
  Stop();
  std::free(rxbuf_);
}

int Reader::Start() {
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  rxbuf_ = static_cast<uint8_t*>(std::malloc(kRxBuf));
  if (wake_fd_ < 0 || !rxbuf_) {
    int e = wake_fd_ < 0 ? errno : ENOMEM;
    tsfn_.Release();
    return e;
  }
  if (opts_.dump_on_start && fds_.dump >= 0) dump_req_ = true;
  int rc = pthread_create(&thread_, nullptr, Main, this);
  if (rc != 0) {
    tsfn_.Release();
    return rc;
  }
  running_ = true;
  return 0;
}

void Reader::Wake() {
  uint64_t one = 1;
  ssize_t n = write(wake_fd_, &one, sizeof(one));
  (void)n;  // EAGAIN means a wakeup is already pending
}

void Reader::RequestDump() {
  if (fds_.dump < 0) return;
  dump_req_ = true;
  Wake();
}

void Reader::Stop() {
  if (running_) {
    stop_ = true;
    Wake();
    pthread_join(thread_, nullptr);
    running_ = false;
  }
  if (wake_fd_ >= 0) {
    close(wake_fd_);
    wake_fd_ = -1;
  }
}

void* Reader::Main(void* self) {
  pthread_setname_np(pthread_self(), "natwatch-nl");
  static_cast<Reader*>(self)->Run();
  return nullptr;
}

void Reader::Arm(int64_t& deadline) {
  if (deadline == 0) deadline = MonoMs() + opts_.batch_ms;
}

// SK_MEMINFO_DROPS is a wrapping u32 (atomic_t): the u32 difference is right across a wrap.
bool Reader::ReadDrops(int fd, DropWatch& d, LossCounters& loss) {
  int64_t v = NlDrops(fd);
  if (v < 0) return false;  // unknown: the ENOBUFS count still says loss happened
  const uint32_t delta = uint32_t(v) - d.last;
  d.last = uint32_t(v);
  loss.kernel_drops += delta;
  return delta != 0;
}

// recv() said ENOBUFS: the kernel dropped events for us. Count, take the exact drop count so
// far, and keep reading (a reader that stops here loses everything after).
void Reader::Overrun(int fd, DropWatch& d, LossCounters& loss, int64_t& deadline) {
  loss.enobufs++;
  ReadDrops(fd, d, loss);
  d.watching = true;
  Arm(deadline);
}

// The queue is empty, so the recv that emptied it cleared the congestion: every drop from now
// on raises a new ENOBUFS. One last read takes the drops counted while congested.
void Reader::DrainedAfterLoss(int fd, DropWatch& d, LossCounters& loss, int64_t& deadline) {
  if (!d.watching) return;
  d.watching = false;
  if (ReadDrops(fd, d, loss)) Arm(deadline);
}

void Reader::Flush(BatchWriter& w, LossCounters& loss, int64_t& deadline) {
  deadline = 0;
  // A batch handed over after loss carries the drops counted up to now.
  if (&w == &ct_ && ct_drops_.watching) ReadDrops(fds_.ct, ct_drops_, loss);
  if (&w == &nl_ && nl_drops_.watching) ReadDrops(fds_.nflog, nl_drops_, loss);
  Batch b = w.Take(loss);
  if (!b.data) return;  // no memory even for a header: the counters stay pending
  napi_status st = tsfn_.NonBlockingCall(b.data);
  // Queue full: JavaScript is behind (a burst, a GC pause). Wait rather than drop: while this
  // thread waits it reads nothing, so events queue in the large socket buffer instead, and if
  // that overflows too the kernel counts every drop exactly (SO_MEMINFO). Waiting in place also
  // keeps the records of a half-walked datagram.
  while (st == napi_queue_full && !stop_.load(std::memory_order_relaxed)) {
    timespec ts{0, kQueueRetryNs};
    nanosleep(&ts, nullptr);
    st = tsfn_.NonBlockingCall(b.data);
  }
  // Anything else is stop() or a closing TSFN: nobody is left to deliver to.
  if (st != napi_ok) std::free(b.data);
}

void Reader::StartDump() {
  dump_req_ = false;
  if (ct_.Count() > 0) Flush(ct_, ct_loss_, ct_deadline_);
  ct_loss_.flags |= kFlagDumpBegin;
  alignas(nlmsghdr) uint8_t req[64];
  nlmsghdr* nlh = NlStart(req, sizeof(req), (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET,
                          NLM_F_REQUEST | NLM_F_DUMP, AF_UNSPEC, 0, ++dump_seq_);
  int err = nlh ? NlSend(fds_.dump, nlh) : EINVAL;
  if (err != 0) {
    EndDump(err);
    return;
  }
  dump_active_ = true;
  dump_intr_ = false;
  Arm(ct_deadline_);
}

void Reader::EndDump(int err) {
  dump_active_ = false;
  ct_loss_.flags |= kFlagDumpEnd;
  if (err) {
    ct_loss_.flags |= kFlagDumpError;
    ct_loss_.err = uint32_t(err);
  }
  Flush(ct_, ct_loss_, ct_deadline_);
}

// Events come one per datagram: recvmmsg takes up to kSlots of them per system call.
void Reader::DrainConntrack() {
  mmsghdr msgs[kSlots];
  iovec iov[kSlots];
  sockaddr_nl from[kSlots];
  for (int round = 0; round < kMaxDatagramsPerWake / kSlots; round++) {
    for (int i = 0; i < kSlots; i++) {
      iov[i] = {rxbuf_ + size_t(i) * slot_, slot_};
      msgs[i] = {};
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &from[i];
      msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
    }
    int n = recvmmsg(fds_.ct, msgs, kSlots, MSG_DONTWAIT, nullptr);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {
        Overrun(fds_.ct, ct_drops_, ct_loss_, ct_deadline_);
        continue;
      }
      DrainedAfterLoss(fds_.ct, ct_drops_, ct_loss_, ct_deadline_);
      return;  // EAGAIN
    }
    now_ms_ = WallMs();
    DecodeCounters c;
    for (int i = 0; i < n; i++) {
      if (!NlFromKernel(from[i], msgs[i].msg_hdr.msg_namelen)) {
        ct_loss_.foreign++;
        Arm(ct_deadline_);
        continue;
      }
      if (msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {  // larger than a slot: that event is lost
        ct_loss_.dropped++;
        Arm(ct_deadline_);
        continue;
      }
      WalkDatagram(rxbuf_ + size_t(i) * slot_, msgs[i].msg_len, c, [&](const nlmsghdr* nlh) {
        if (AppendConntrack(nlh, false, now_ms_, ct_, c)) {
          Arm(ct_deadline_);
          if (ct_.Full()) Flush(ct_, ct_loss_, ct_deadline_);
        }
        return true;
      });
    }
    if (uint32_t lost = ct_.TakeLost()) {
      ct_loss_.dropped += lost;
      Arm(ct_deadline_);
    }
    if (c.errors || c.unknown) {
      ct_loss_.decode_errors += c.errors;
      ct_loss_.unknown_attrs += c.unknown;
      Arm(ct_deadline_);
    }
    if (n < kSlots) {  // drained
      DrainedAfterLoss(fds_.ct, ct_drops_, ct_loss_, ct_deadline_);
      return;
    }
  }
}

void Reader::DrainDump() {
  for (int i = 0; i < kMaxDatagramsPerWake; i++) {
    int flags = 0;
    ssize_t n = RecvFromKernel(fds_.dump, rxbuf_, kRxBuf, &flags, ct_loss_);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      if (dump_active_) EndDump(errno);  // this dump is incomplete; the caller may resync
      return;
    }
    if (n == 0) {  // not from the kernel: dropped, counted, reported with the next batch
      Arm(ct_deadline_);
      continue;
    }
    // The rest of a dump abandoned on an error is read and dropped: the kernel refuses a new
    // dump (EBUSY) on a socket whose previous one is still running, and only reads advance it.
    if (!dump_active_) continue;
    if (flags & MSG_TRUNC) {
      // Records cut off: the table read is incomplete (loss, so a resync follows).
      ct_loss_.dropped++;
      dump_intr_ = true;
    }
    now_ms_ = WallMs();
    DecodeCounters c;
    int end = -1;
    WalkDatagram(rxbuf_, size_t(n), c, [&](const nlmsghdr* nlh) {
      if (nlh->nlmsg_seq != dump_seq_) return true;  // a stale reply of an aborted dump
      if (EndOfReply(nlh, &end)) return false;
      // The table changed under a dump that checks consistency: its records are real but the
      // set may be incomplete, so the dump ends as failed rather than as a complete table.
      if (nlh->nlmsg_flags & NLM_F_DUMP_INTR) dump_intr_ = true;
      if (AppendConntrack(nlh, true, now_ms_, ct_, c)) {
        if (ct_.Full()) Flush(ct_, ct_loss_, ct_deadline_);
      }
      return true;
    });
    ct_loss_.decode_errors += c.errors;
    ct_loss_.unknown_attrs += c.unknown;
    ct_loss_.dropped += ct_.TakeLost();
    if (end >= 0) EndDump(end == 0 && dump_intr_ ? EINTR : end);
  }
}

void Reader::DrainNflog() {
  for (int i = 0; i < kMaxDatagramsPerWake; i++) {
    int flags = 0;
    ssize_t n = RecvFromKernel(fds_.nflog, rxbuf_, kRxBuf, &flags, nl_loss_);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {
        Overrun(fds_.nflog, nl_drops_, nl_loss_, nl_deadline_);
        continue;
      }
      DrainedAfterLoss(fds_.nflog, nl_drops_, nl_loss_, nl_deadline_);
      return;
    }
    if (n == 0 || (flags & MSG_TRUNC)) {
      // Not from the kernel (counted), or packets cut off (at least one lost).
      if (n > 0) nl_loss_.dropped++;
      Arm(nl_deadline_);
      continue;
    }
    now_ms_ = WallMs();
    const int64_t mono = MonoMs();
    DecodeCounters c;
    WalkDatagram(rxbuf_, size_t(n), c, [&](const nlmsghdr* nlh) {
      uint8_t* rec = AppendNflog(nlh, now_ms_, nl_, c);
      if (!rec) return true;
      uint32_t idx;
      std::memcpy(&idx, rec + kNlIndex, 4);
      if (rec[kNlFlags] & kNlFlagIndev) ifnames_.Lookup(idx, mono, rec + kNlIndevName);
      std::memcpy(&idx, rec + kNlOutdex, 4);
      if (rec[kNlFlags] & kNlFlagOutdev) ifnames_.Lookup(idx, mono, rec + kNlOutdevName);
      if (rec[kNlFlags] & kNlFlagSeq) {
        uint16_t group;
        uint32_t seq;
        std::memcpy(&group, rec + kNlGroup, 2);
        std::memcpy(&seq, rec + kNlSeq, 4);
        nl_loss_.seq_gap += seqs_.Gap(group, seq);
      }
      Arm(nl_deadline_);
      if (nl_.Full()) Flush(nl_, nl_loss_, nl_deadline_);
      return true;
    });
    if (uint32_t lost = nl_.TakeLost()) {
      nl_loss_.dropped += lost;
      Arm(nl_deadline_);
    }
    if (c.errors || c.unknown) {
      nl_loss_.decode_errors += c.errors;
      nl_loss_.unknown_attrs += c.unknown;
      Arm(nl_deadline_);
    }
  }
}

void Reader::Run() {
  pollfd p[4];
  while (!stop_.load(std::memory_order_relaxed)) {
    if (dump_req_.load() && !dump_active_) StartDump();
    int timeout = -1;
    int64_t now = MonoMs();
    for (int64_t d : {ct_deadline_, nl_deadline_}) {
      if (d == 0) continue;
      int t = d > now ? int(d - now) : 0;
      if (timeout < 0 || t < timeout) timeout = t;
    }
    int n = 0;
    p[n++] = {wake_fd_, POLLIN, 0};
    const int ct_i = fds_.ct >= 0 ? n : -1;
    if (ct_i >= 0) p[n++] = {fds_.ct, POLLIN, 0};
    const int dump_i = fds_.dump >= 0 ? n : -1;
    if (dump_i >= 0) p[n++] = {fds_.dump, POLLIN, 0};
    const int nl_i = fds_.nflog >= 0 ? n : -1;
    if (nl_i >= 0) p[n++] = {fds_.nflog, POLLIN, 0};
    int pr = poll(p, nfds_t(n), timeout);
    if (pr < 0 && errno != EINTR) {
      // ENOMEM, the only failure a valid pollfd array can see, passes. The thread must not
      // exit on its own: it owns the TSFN's last reference, which Ref()/Unref() still use.
      timespec ts{0, 10 * 1000 * 1000};
      nanosleep(&ts, nullptr);
      continue;
    }
    if (pr > 0) {
      if (p[0].revents) {
        uint64_t v;
        ssize_t r = read(wake_fd_, &v, sizeof(v));
        (void)r;
      }
      // POLLERR on a netlink socket is a pending ENOBUFS: recv reports and clears it.
      if (ct_i >= 0 && p[ct_i].revents) DrainConntrack();
      if (dump_i >= 0 && p[dump_i].revents) DrainDump();
      if (nl_i >= 0 && p[nl_i].revents) DrainNflog();
      // At tens of thousands of events/s a wakeup per event costs more than decoding it: let
      // the (large) socket buffer collect a few hundred microseconds' worth first.
      if (opts_.coalesce_us && ct_i >= 0 && p[ct_i].revents && !stop_.load()) {
        timespec ts{0, long(opts_.coalesce_us) * 1000};
        nanosleep(&ts, nullptr);
      }
    }
    now = MonoMs();
    if (ct_deadline_ && now >= ct_deadline_) Flush(ct_, ct_loss_, ct_deadline_);
    if (nl_deadline_ && now >= nl_deadline_) Flush(nl_, nl_loss_, nl_deadline_);
  }
  if (ct_.Count() || ct_loss_.Any()) Flush(ct_, ct_loss_, ct_deadline_);
  if (nl_.Count() || nl_loss_.Any()) Flush(nl_, nl_loss_, nl_deadline_);
  tsfn_.Release();
}

}  // namespace nw
