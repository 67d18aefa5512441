#include "reader.h"

#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace nw {
namespace {

constexpr size_t kRxBuf = 1 << 17;  // a dump datagram is at most 32 KiB on current kernels
constexpr int kMaxDatagramsPerWake = 512;  // fairness between sockets and timely flushes
constexpr int kSlots = 32;                 // event datagrams per recvmmsg
constexpr size_t kSlotSize = kRxBuf / kSlots;  // 4 KiB: an event message is ≈ 150–400 bytes
constexpr long kQueueRetryNs = 200 * 1000;     // 0.2 ms between hand-over retries while JS is behind
constexpr int kMaxEvents = 64;                 // epoll events per wakeup
constexpr int64_t kMaxParkMs = 25;             // a parked window's events must fit the buffer

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

void CloseFd(int& fd) {
  if (fd >= 0) close(fd);
  fd = -1;
}

/**
 * One datagram into buf: its length, 0 when it did not come from the kernel (dropped and
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

// SK_MEMINFO_DROPS is a wrapping u32 (atomic_t): the u32 difference is right across a wrap.
bool ReadDrops(int fd, DropWatch& d, LossCounters& loss) {
  int64_t v = NlDrops(fd);
  if (v < 0) return false;  // unknown: the ENOBUFS count still says loss happened
  const uint32_t delta = uint32_t(v) - d.last;
  d.last = uint32_t(v);
  loss.kernel_drops += delta;
  return delta != 0;
}

void Arm(int64_t& deadline, uint32_t batch_ms) {
  if (deadline == 0) deadline = MonoMs() + batch_ms;
}

// recv() said ENOBUFS: the kernel dropped events for us. Count, take the exact drop count so
// far, and keep reading (a reader that stops here loses everything after).
void Overrun(int fd, DropWatch& d, LossCounters& loss, int64_t& deadline, uint32_t batch_ms) {
  loss.enobufs++;
  ReadDrops(fd, d, loss);
  d.watching = true;
  Arm(deadline, batch_ms);
}

// The queue is empty, so the recv that emptied it cleared the congestion: every drop from now
// on raises a new ENOBUFS. One last read takes the drops counted while congested.
void DrainedAfterLoss(int fd, DropWatch& d, LossCounters& loss, int64_t& deadline, uint32_t batch_ms) {
  if (!d.watching) return;
  d.watching = false;
  if (ReadDrops(fd, d, loss)) Arm(deadline, batch_ms);
}

// After a group of datagrams: the records the writer had no memory for, and the decode
// counters, become the batch's loss counts.
void EndDatagrams(BatchWriter& w, LossCounters& loss, const DecodeCounters& c, int64_t& deadline, uint32_t batch_ms) {
  if (uint32_t lost = w.TakeLost()) {
    loss.dropped += lost;
    Arm(deadline, batch_ms);
  }
  if (c.errors || c.unknown) {
    loss.decode_errors += c.errors;
    loss.unknown_attrs += c.unknown;
    Arm(deadline, batch_ms);
  }
}

}  // namespace

void CallJsBatch(Napi::Env env, Napi::Function fn, BatchPool* pool, uint8_t* data) {
  if (env == nullptr || fn.IsEmpty()) {  // environment tearing down: just free
    std::free(data);
    return;
  }
  uint32_t count;
  uint32_t rsize;
  std::memcpy(&count, data + kHdrCount, 4);
  std::memcpy(&rsize, data + kHdrRecordSize, 4);
  size_t size = kHeaderSize + size_t(count) * rsize;
  // Raw N-API calls: during environment teardown both may fail (no JS can run any more), and
  // node-addon-api's wrappers would turn that into a fatal "throw" with C++ exceptions off.
  napi_value buf = pool->Fill(env, data, size);
  if (buf == nullptr && count > 0) {
    // No memory for a Buffer this size: hand over the header alone, its records counted as
    // dropped, so the loss is reported and resynced like any other rather than silent.
    uint32_t dropped;
    std::memcpy(&dropped, data + kHdrDropped, 4);
    dropped += count;
    std::memcpy(data + kHdrDropped, &dropped, 4);
    std::memset(data + kHdrCount, 0, 4);
    buf = pool->Fill(env, data, kHeaderSize);
  }
  std::free(data);
  napi_status st = buf ? napi_ok : napi_generic_failure;
  if (st == napi_ok) {
    napi_value ignored;
    st = napi_call_function(env, env.Undefined(), fn, 1, &buf, &ignored);
  }
  // The JS side catches and counts its own errors; never let one linger into the next call.
  bool pending = false;
  if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
    napi_value e;
    napi_get_and_clear_last_exception(env, &e);
  }
  (void)st;
}

// --- Channel ------------------------------------------------------------------------------

Channel::Channel(ChannelFds fds, ChannelOptions opts, BatchTsfn tsfn)
    : opts_(opts),
      tsfn_(tsfn),
      ifname_fd_(fds.ifname),
      slot_(opts.slot_bytes >= 64 && opts.slot_bytes <= kSlotSize ? opts.slot_bytes : kSlotSize),
      ct_(kKindConntrack, kCtRecordSize, opts.batch_records),
      nl_(kKindNflog, kNlRecordSize, opts.batch_records),
      ifnames_(fds.ifname) {
  batch_ms_ = opts.batch_ms;
  ct_port_ = {this, kPortCt, fds.ct, {}};
  dump_port_ = {this, kPortDump, fds.dump, {}};
  if (opts.dump_on_start && fds.dump >= 0) dump_req_ = true;
  // Read here, per channel, on the JS thread: a test can set it for one source.
  const char* no_uring = std::getenv("NATWATCH_NO_IO_URING");
  want_uring_ = !(no_uring && *no_uring && std::strcmp(no_uring, "0") != 0);
}

const char* Channel::ReceivePath() const {
  switch (rx_path_.load(std::memory_order_relaxed)) {
    case kRxUring:
      return "io_uring";
    case kRxRecvmmsg:
      return "recvmmsg";
    default:
      return nullptr;
  }
}

Channel::~Channel() {
  rx_.reset();  // on the reader thread (Retire) whenever it exists: the ring is that thread's
  CloseFd(ct_port_.fd);
  CloseFd(dump_port_.fd);
  for (uint32_t i = 0; i < nflog_count_; i++) CloseFd(nflog_ports_[i].fd);
  CloseFd(ifname_fd_);
}

bool Channel::AddNflogFd(int fd) {
  if (nflog_count_ >= kMaxNflogGroups) return false;
  nflog_ports_[nflog_count_++] = {this, kPortNflog, fd, {}};
  return true;
}

// --- Reader: JS thread --------------------------------------------------------------------

Reader::~Reader() {
  if (running_) StopThread();
}

int Reader::Add(Channel* ch) {
  if (live_ == 0 && !running_) {
    if (int e = StartThread()) {
      ch->tsfn_.Release();
      delete ch;
      return e;
    }
  }
  live_++;
  Post({kCmdAdd, ch, -1});
  return 0;
}

void Reader::AddNflog(Channel* ch, int fd) { Post({kCmdAddNflog, ch, fd}); }

void Reader::RequestDump(Channel* ch) {
  if (ch->dump_port_.fd < 0) return;
  ch->dump_req_ = true;
  Wake();
}

void Reader::Remove(Channel* ch) {
  ch->closing_ = true;  // a flush waiting on this channel's full queue gives up now
  Post({kCmdRemove, ch, -1});
  if (--live_ == 0) StopThread();
}

void Reader::Post(Cmd c) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_.push_back(c);
  }
  Wake();
}

void Reader::Wake() {
  uint64_t one = 1;
  ssize_t n = write(wake_fd_, &one, sizeof(one));
  (void)n;  // EAGAIN means a wakeup is already pending
}

int Reader::StartThread() {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  rxbuf_ = static_cast<uint8_t*>(std::malloc(kRxBuf));
  int err = 0;
  if (epfd_ < 0 || wake_fd_ < 0) {
    err = errno;
  } else if (!rxbuf_) {
    err = ENOMEM;
  } else {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;  // the wake eventfd
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, wake_fd_, &ev) != 0) err = errno;
  }
  if (!err) {
    stop_ = false;
    err = pthread_create(&thread_, nullptr, Main, this);
  }
  if (err) {
    CloseFd(epfd_);
    CloseFd(wake_fd_);
    std::free(rxbuf_);
    rxbuf_ = nullptr;
    return err;
  }
  running_ = true;
  return 0;
}

void Reader::StopThread() {
  stop_ = true;
  Wake();
  pthread_join(thread_, nullptr);  // the thread retires every channel on its way out
  running_ = false;
  CloseFd(epfd_);
  CloseFd(wake_fd_);
  std::free(rxbuf_);
  rxbuf_ = nullptr;
}

// --- Reader: its thread -------------------------------------------------------------------

void* Reader::Main(void* self) {
  pthread_setname_np(pthread_self(), "natwatch-nl");
  static_cast<Reader*>(self)->Run();
  return nullptr;
}

void Reader::Watch(Channel::Port& p) {
  if (p.fd < 0) return;
  epoll_event ev{};
  ev.events = EPOLLIN;  // level-triggered: a drain cut short by fairness is resumed next round
  ev.data.ptr = &p;
  epoll_ctl(epfd_, EPOLL_CTL_ADD, p.fd, &ev);  // ENOMEM aside, cannot fail for a fresh socket
}

void Reader::ApplyCommands() {
  std::vector<Cmd> cmds;
  {
    std::lock_guard<std::mutex> lock(mu_);
    cmds.swap(pending_);
  }
  for (const Cmd& c : cmds) {
    Channel* ch = c.ch;
    switch (c.op) {
      case kCmdAdd:
        channels_.push_back(ch);
        ChooseReceive(*ch);
        Watch(ch->ct_port_);
        Watch(ch->dump_port_);
        for (uint32_t i = 0; i < ch->nflog_count_; i++) Watch(ch->nflog_ports_[i]);
        break;
      case kCmdAddNflog:
        if (ch->AddNflogFd(c.fd)) {
          Watch(ch->nflog_ports_[ch->nflog_count_ - 1]);
        } else {
          close(c.fd);
        }
        break;
      case kCmdRemove:
        channels_.erase(std::remove(channels_.begin(), channels_.end(), ch), channels_.end());
        Retire(ch);
        break;
    }
  }
}

// Records still in its writers are dropped: the source is closed, JS ignores late batches.
void Reader::Retire(Channel* ch) {
  for (Channel::Port* p : {&ch->ct_port_, &ch->dump_port_}) {
    if (p->fd >= 0) epoll_ctl(epfd_, EPOLL_CTL_DEL, p->fd, nullptr);
  }
  for (uint32_t i = 0; i < ch->nflog_count_; i++) epoll_ctl(epfd_, EPOLL_CTL_DEL, ch->nflog_ports_[i].fd, nullptr);
  ch->tsfn_.Release();
  delete ch;
}

void Reader::FlushCt(Channel& ch) { Flush(ch, ch.ct_, ch.ct_loss_, ch.ct_deadline_); }
void Reader::FlushNl(Channel& ch) { Flush(ch, ch.nl_, ch.nl_loss_, ch.nl_deadline_); }

void Reader::Flush(Channel& ch, BatchWriter& w, LossCounters& loss, int64_t& deadline) {
  deadline = 0;
  // A batch handed over after loss carries the drops counted up to now.
  if (&w == &ch.ct_ && ch.ct_port_.drops.watching) ReadDrops(ch.ct_port_.fd, ch.ct_port_.drops, loss);
  if (&w == &ch.nl_) {
    for (uint32_t i = 0; i < ch.nflog_count_; i++) {
      Channel::Port& p = ch.nflog_ports_[i];
      if (p.drops.watching) ReadDrops(p.fd, p.drops, loss);
    }
  }
  Batch b = w.Take(loss);
  if (!b.data) return;  // no memory even for a header: the counters stay pending
  napi_status st = ch.tsfn_.NonBlockingCall(b.data);
  // Queue full: JavaScript is behind (a burst, a GC pause). Wait rather than drop: while this
  // thread waits it reads nothing, so events queue in the large socket buffers instead, and if
  // those overflow too the kernel counts every drop exactly (SO_MEMINFO). Waiting in place also
  // keeps the records of a half-walked datagram.
  while (st == napi_queue_full && !stop_.load(std::memory_order_relaxed) &&
         !ch.closing_.load(std::memory_order_relaxed)) {
    timespec ts{0, kQueueRetryNs};
    nanosleep(&ts, nullptr);
    st = ch.tsfn_.NonBlockingCall(b.data);
  }
  // Anything else is a removed channel, stop, or a closing TSFN: nobody is left to deliver to.
  if (st != napi_ok) std::free(b.data);
}

void Reader::StartDump(Channel& ch) {
  ch.dump_req_ = false;
  if (ch.ct_parked_until_) DrainConntrack(ch);  // events before the dump stay before it
  if (ch.ct_.Count() > 0) FlushCt(ch);
  ch.ct_loss_.flags |= kFlagDumpBegin;
  alignas(nlmsghdr) uint8_t req[64];
  nlmsghdr* nlh = NlStart(req, sizeof(req), (NFNL_SUBSYS_CTNETLINK << 8) | IPCTNL_MSG_CT_GET,
                          NLM_F_REQUEST | NLM_F_DUMP, AF_UNSPEC, 0, ++ch.dump_seq_);
  int err = nlh ? NlSend(ch.dump_port_.fd, nlh) : EINVAL;
  if (err != 0) {
    EndDump(ch, err);
    return;
  }
  ch.dump_active_ = true;
  ch.dump_intr_ = false;
  Arm(ch.ct_deadline_, ch.batch_ms_.load(std::memory_order_relaxed));
}

void Reader::EndDump(Channel& ch, int err) {
  if (ch.ct_parked_until_) DrainConntrack(ch);
  ch.dump_active_ = false;
  ch.ct_loss_.flags |= kFlagDumpEnd;
  if (err) {
    ch.ct_loss_.flags |= kFlagDumpError;
    ch.ct_loss_.err = uint32_t(err);
  }
  FlushCt(ch);
}

// Events come one per datagram. They are received with io_uring where it can be used: a
// multishot recvmsg into a ring of provided buffers, run only when this thread enters the ring
// (DEFER_TASKRUN), so epoll still says when to read and parked windows still decide how often;
// it costs 26–27 % less per event than recvmmsg (BENCHMARKS.md, "io_uring receive"). Otherwise
// (no io_uring, seccomp, kernel.io_uring_disabled, a kernel older than 6.1, or
// NATWATCH_NO_IO_URING=1) recvmmsg takes up to kSlots of them per system call. Both hand each
// datagram to TakeEvent.
int Reader::DrainConntrack(Channel& ch) {
  if (!ch.rx_) return DrainRecvmmsg(ch);
  const int n = DrainUring(ch);
  if (ch.rx_ || n < 0) return n;
  const int m = DrainRecvmmsg(ch);  // io_uring failed just now: the rest the other way
  return m < 0 ? -1 : n + m;
}

void Reader::TakeEvent(Channel& ch, const sockaddr_nl& from, socklen_t namelen, int flags, const uint8_t* data,
                       size_t len, DecodeCounters& c) {
  LossCounters& loss = ch.ct_loss_;
  const uint32_t bms = ch.batch_ms_.load(std::memory_order_relaxed);
  if (!NlFromKernel(from, namelen)) {
    loss.foreign++;
    Arm(ch.ct_deadline_, bms);
    return;
  }
  if (flags & MSG_TRUNC) {  // larger than a slot: that event is lost
    loss.dropped++;
    Arm(ch.ct_deadline_, bms);
    return;
  }
  WalkDatagram(data, len, c, [&](const nlmsghdr* nlh) {
    if (AppendConntrack(nlh, false, now_ms_, ch.ct_, c)) {
      Arm(ch.ct_deadline_, bms);
      if (ch.ct_.Full()) FlushCt(ch);
    }
    return true;
  });
}


int Reader::DrainRecvmmsg(Channel& ch) {
  const int fd = ch.ct_port_.fd;
  DropWatch& drops = ch.ct_port_.drops;
  LossCounters& loss = ch.ct_loss_;
  const uint32_t bms = ch.batch_ms_.load(std::memory_order_relaxed);
  const size_t slot = ch.slot_;
  int read = 0;
  mmsghdr msgs[kSlots];
  iovec iov[kSlots];
  sockaddr_nl from[kSlots];
  for (int round = 0; round < kMaxDatagramsPerWake / kSlots; round++) {
    for (int i = 0; i < kSlots; i++) {
      iov[i] = {rxbuf_ + size_t(i) * slot, slot};
      msgs[i] = {};
      msgs[i].msg_hdr.msg_iov = &iov[i];
      msgs[i].msg_hdr.msg_iovlen = 1;
      msgs[i].msg_hdr.msg_name = &from[i];
      msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
    }
    int n = recvmmsg(fd, msgs, kSlots, MSG_DONTWAIT, nullptr);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {
        Overrun(fd, drops, loss, ch.ct_deadline_, bms);
        continue;
      }
      DrainedAfterLoss(fd, drops, loss, ch.ct_deadline_, bms);
      return read;  // EAGAIN
    }
    read += n;
    now_ms_ = WallMs();
    DecodeCounters c;
    for (int i = 0; i < n; i++) {
      TakeEvent(ch, from[i], msgs[i].msg_hdr.msg_namelen, msgs[i].msg_hdr.msg_flags, rxbuf_ + size_t(i) * slot,
                msgs[i].msg_len, c);
    }
    EndDatagrams(ch.ct_, loss, c, ch.ct_deadline_, bms);
    if (n < kSlots) {  // drained
      DrainedAfterLoss(fd, drops, loss, ch.ct_deadline_, bms);
      return read;
    }
  }
  return -1;
}

// Each enter runs the receives queued since the last one, a pass of up to ≈ 32 datagrams
// each; IORING_SQ_TASKRUN says another pass is queued. A pass that ends the multishot (the
// socket's ENOBUFS, or a dry buffer ring) is re-armed at once; the re-arm receives at once too,
// so its completions are reaped before the next enter.
int Reader::DrainUring(Channel& ch) {
  UringRx& u = *ch.rx_;
  const int fd = ch.ct_port_.fd;
  DropWatch& drops = ch.ct_port_.drops;
  LossCounters& loss = ch.ct_loss_;
  const uint32_t bms = ch.batch_ms_.load(std::memory_order_relaxed);
  int read = 0;
  bool overrun = false;
  for (int round = 0; round < kMaxDatagramsPerWake / kSlots; round++) {
    if (u.Enter() != 0) {
      FallBack(ch);
      return read;
    }
    for (int again = 0; again < 8; again++) {
      now_ms_ = WallMs();
      DecodeCounters c;
      UringReap r = u.Reap([&](const UringDatagram& d) { TakeEvent(ch, *d.from, d.namelen, d.flags, d.data, d.len, c); });
      EndDatagrams(ch.ct_, loss, c, ch.ct_deadline_, bms);
      read += r.datagrams;
      if (!r.ended) break;
      if (r.overrun) {
        overrun = true;
        Overrun(fd, drops, loss, ch.ct_deadline_, bms);
      }
      if (r.error != 0 || u.Arm() != 0) {  // the receive is over: nothing in flight
        FallBack(ch);
        return read;
      }
    }
    if (!u.WorkPending()) {
      // A wakeup with nothing received and no overrun seen: take a pending socket error here,
      // so that a level-triggered EPOLLERR cannot come back forever.
      if (read == 0 && !overrun) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == ENOBUFS) {
          Overrun(fd, drops, loss, ch.ct_deadline_, bms);
        }
      }
      DrainedAfterLoss(fd, drops, loss, ch.ct_deadline_, bms);
      return read;
    }
    if (read >= kMaxDatagramsPerWake) return -1;
  }
  return -1;
}

void Reader::ChooseReceive(Channel& ch) {
  if (ch.want_uring_ && ch.ct_port_.fd >= 0) ch.rx_.reset(UringRx::Open(ch.ct_port_.fd, ch.slot_));
  ch.rx_path_.store(ch.rx_ ? Channel::kRxUring : Channel::kRxRecvmmsg, std::memory_order_relaxed);
  // Arming may have received already, leaving nothing in the socket to wake epoll for.
  if (ch.rx_) DrainConntrack(ch);
}

void Reader::FallBack(Channel& ch) {
  ch.rx_.reset();
  ch.rx_path_.store(Channel::kRxRecvmmsg, std::memory_order_relaxed);
}

// The window ends with the pending batch's hand-off, never more than kMaxParkMs away.
int64_t Reader::WindowEnd(const Channel& ch, int64_t now) {
  const int64_t end = ch.ct_deadline_ ? ch.ct_deadline_ : now + ch.batch_ms_.load(std::memory_order_relaxed);
  return std::min(end, now + kMaxParkMs);
}

// Coalescing: instead of a wakeup per event (at a few thousand events/s each brings one or
// two), the event socket leaves the epoll set for one hand-off window after a read that found
// events, and is read once at the window's end, just before the batch is handed over. So under
// load it costs one read per window however many events arrive; the first event after a quiet
// spell still wakes the thread at once. An overrun still does: EPOLLERR is reported whatever
// the mask says. A dump's begin and end read the parked socket first, so that events stay on
// the side of the dump's markers they were queued on, as without coalescing.
void Reader::Park(Channel& ch, int64_t until) {
  if (ch.ct_parked_until_ == 0) {
    epoll_event ev{};
    ev.data.ptr = &ch.ct_port_;
    epoll_ctl(epfd_, EPOLL_CTL_MOD, ch.ct_port_.fd, &ev);
  }
  ch.ct_parked_until_ = until;
}

void Reader::Unpark(Channel& ch) {
  if (ch.ct_parked_until_ == 0) return;
  ch.ct_parked_until_ = 0;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = &ch.ct_port_;
  epoll_ctl(epfd_, EPOLL_CTL_MOD, ch.ct_port_.fd, &ev);
}

// A parked window ended: take what arrived, and stay parked for another window while events
// keep coming (a read cut short by the fairness bound is resumed in the next round).
void Reader::ParkedRound(Channel& ch, int64_t now) {
  int n = DrainConntrack(ch);
  if (ch.ct_deadline_ && now >= ch.ct_deadline_) FlushCt(ch);
  if (n < 0) {
    ch.ct_parked_until_ = now;
  } else if (n > 0) {
    ch.ct_parked_until_ = WindowEnd(ch, now);
  } else {
    Unpark(ch);
  }
}

void Reader::DrainDump(Channel& ch) {
  LossCounters& loss = ch.ct_loss_;
  for (int i = 0; i < kMaxDatagramsPerWake; i++) {
    int flags = 0;
    ssize_t n = RecvFromKernel(ch.dump_port_.fd, rxbuf_, kRxBuf, &flags, loss);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) return;
      if (ch.dump_active_) EndDump(ch, errno);  // this dump is incomplete; the caller may resync
      return;
    }
    if (n == 0) {  // not from the kernel: dropped, counted, reported with the next batch
      Arm(ch.ct_deadline_, ch.batch_ms_.load(std::memory_order_relaxed));
      continue;
    }
    // The rest of a dump abandoned on an error is read and dropped: the kernel refuses a new
    // dump (EBUSY) on a socket whose previous one is still running, and only reads advance it.
    if (!ch.dump_active_) continue;
    if (flags & MSG_TRUNC) {
      // Records cut off: the table read is incomplete (loss, so a resync follows).
      loss.dropped++;
      ch.dump_intr_ = true;
    }
    now_ms_ = WallMs();
    DecodeCounters c;
    int end = -1;
    WalkDatagram(rxbuf_, size_t(n), c, [&](const nlmsghdr* nlh) {
      if (nlh->nlmsg_seq != ch.dump_seq_) return true;  // a stale reply of an aborted dump
      if (EndOfReply(nlh, &end)) return false;
      // The table changed under a dump that checks consistency: its records are real but the
      // set may be incomplete, so the dump ends as failed rather than as a complete table.
      if (nlh->nlmsg_flags & NLM_F_DUMP_INTR) ch.dump_intr_ = true;
      if (AppendConntrack(nlh, true, now_ms_, ch.ct_, c)) {
        if (ch.ct_.Full()) FlushCt(ch);
      }
      return true;
    });
    loss.decode_errors += c.errors;
    loss.unknown_attrs += c.unknown;
    loss.dropped += ch.ct_.TakeLost();
    if (end >= 0) EndDump(ch, end == 0 && ch.dump_intr_ ? EINTR : end);
  }
}

void Reader::DrainNflog(Channel& ch, Channel::Port& p) {
  LossCounters& loss = ch.nl_loss_;
  const uint32_t bms = ch.batch_ms_.load(std::memory_order_relaxed);
  for (int i = 0; i < kMaxDatagramsPerWake; i++) {
    int flags = 0;
    ssize_t n = RecvFromKernel(p.fd, rxbuf_, kRxBuf, &flags, loss);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {
        Overrun(p.fd, p.drops, loss, ch.nl_deadline_, bms);
        continue;
      }
      DrainedAfterLoss(p.fd, p.drops, loss, ch.nl_deadline_, bms);
      return;
    }
    if (n == 0 || (flags & MSG_TRUNC)) {
      // Not from the kernel (counted), or packets cut off (at least one lost).
      if (n > 0) loss.dropped++;
      Arm(ch.nl_deadline_, bms);
      continue;
    }
    now_ms_ = WallMs();
    const int64_t mono = MonoMs();
    DecodeCounters c;
    WalkDatagram(rxbuf_, size_t(n), c, [&](const nlmsghdr* nlh) {
      uint8_t* rec = AppendNflog(nlh, now_ms_, ch.nl_, c);
      if (!rec) return true;
      uint32_t idx;
      std::memcpy(&idx, rec + kNlIndex, 4);
      if (rec[kNlFlags] & kNlFlagIndev) ch.ifnames_.Lookup(idx, mono, rec + kNlIndevName);
      std::memcpy(&idx, rec + kNlOutdex, 4);
      if (rec[kNlFlags] & kNlFlagOutdev) ch.ifnames_.Lookup(idx, mono, rec + kNlOutdevName);
      if (rec[kNlFlags] & kNlFlagSeq) {
        uint16_t group;
        uint32_t seq;
        std::memcpy(&group, rec + kNlGroup, 2);
        std::memcpy(&seq, rec + kNlSeq, 4);
        loss.seq_gap += ch.seqs_.Gap(group, seq);
      }
      Arm(ch.nl_deadline_, bms);
      if (ch.nl_.Full()) FlushNl(ch);
      return true;
    });
    EndDatagrams(ch.nl_, loss, c, ch.nl_deadline_, bms);
  }
}

void Reader::Run() {
  epoll_event evs[kMaxEvents];
  while (!stop_.load(std::memory_order_relaxed)) {
    ApplyCommands();
    int timeout = -1;
    int64_t now = MonoMs();
    for (Channel* ch : channels_) {
      if (ch->closing_.load(std::memory_order_relaxed)) continue;  // retired next round
      if (ch->dump_req_.load() && !ch->dump_active_) StartDump(*ch);
      for (int64_t d : {ch->ct_deadline_, ch->nl_deadline_, ch->ct_parked_until_}) {
        if (d == 0) continue;
        int t = d > now ? int(d - now) : 0;
        if (timeout < 0 || t < timeout) timeout = t;
      }
    }
    int n = epoll_wait(epfd_, evs, kMaxEvents, timeout);
    if (n < 0 && errno != EINTR) {
      // ENOMEM aside nothing fails here. The thread must not exit on its own: only the last
      // Remove() stops it (the channels' TSFNs are released on the way out).
      timespec ts{0, 10 * 1000 * 1000};
      nanosleep(&ts, nullptr);
      continue;
    }
    for (int i = 0; i < n; i++) {
      Channel::Port* p = static_cast<Channel::Port*>(evs[i].data.ptr);
      if (!p) {
        uint64_t v;
        ssize_t r = read(wake_fd_, &v, sizeof(v));
        (void)r;
        continue;
      }
      Channel& ch = *p->ch;
      if (ch.closing_.load(std::memory_order_relaxed)) continue;  // removed: retired next round
      // EPOLLERR on a netlink socket is a pending ENOBUFS: recv reports and clears it.
      switch (p->kind) {
        case Channel::kPortCt: {
          int got = DrainConntrack(ch);
          if (ch.opts_.coalesce && got != 0) Park(ch, got < 0 ? MonoMs() : WindowEnd(ch, MonoMs()));
          break;
        }
        case Channel::kPortDump:
          DrainDump(ch);
          break;
        case Channel::kPortNflog:
          DrainNflog(ch, *p);
          break;
      }
    }
    now = MonoMs();
    for (Channel* ch : channels_) {
      if (ch->closing_.load(std::memory_order_relaxed)) continue;
      if (ch->ct_parked_until_ && now >= ch->ct_parked_until_) ParkedRound(*ch, now);
      if (ch->ct_deadline_ && now >= ch->ct_deadline_) FlushCt(*ch);
      if (ch->nl_deadline_ && now >= ch->nl_deadline_) FlushNl(*ch);
    }
  }
  // Stopped by the last Remove(): retire what is still here (normally just that channel).
  ApplyCommands();
  for (Channel* ch : channels_) Retire(ch);
  channels_.clear();
}

}  // namespace nw
