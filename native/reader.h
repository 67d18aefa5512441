// The reader: ONE named thread per JS environment (in practice per process) that reads every
// netlink socket of every source, in every namespace, with one epoll set, and hands each
// source's records to JS as packed batches through that source's thread-safe function (bounded
// queue). A source is a Channel: its sockets (conntrack events, dump, one per NFLOG group) and
// its own batch writers, loss counters, dump state and deadlines, so each namespace counts and
// resyncs its own loss. The thread starts with the first channel and is stopped and joined with
// the last; an idle extra namespace costs sockets and a small struct, no thread.
//
// Not NETLINK_LISTEN_ALL_NSID: one socket set to it would receive the conntrack multicast of
// every namespace that has an nsid in ours, tagged with that nsid (a control message). Weighed
// and rejected: (1) all namespaces would share one receive buffer and one drop counter, so a
// burst in one would cost events in the others and loss could no longer be attributed to (and
// repaired by a dump in) the namespace that had it; (2) the UPDATE group is joined per consumer
// need, which must stay per namespace; (3) it needs an nsid for each watched namespace assigned
// in ours (and none exists across user namespaces); (4) NFLOG is unicast to the bound socket,
// and dumps and counters are requests: they need a socket inside each namespace anyway.
//
// Loss accounting, all reported in the channel's next batch header (batch-layout.h):
// - the kernel could not queue events to a socket: ENOBUFS, plus the exact count from
//   SO_MEMINFO;
// - the reader lost events itself: a truncated datagram (MSG_TRUNC), no memory for a batch;
// - datagrams from anyone but the kernel (nl_pid != 0) are dropped and counted, not decoded.
// When a channel's queue towards JS is full the thread waits (it does not drop): events then
// wait in the large socket buffers, whose overflow the kernel counts exactly. All channels feed
// the same JS thread, so waiting for one costs the others nothing they would not wait for anyway.
#pragma once
#include <napi.h>
#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "batch-pool.h"
#include "batch-writer.h"
#include "decode.h"
#include "ifname-cache.h"
#include "netlink-socket.h"
#include "records.h"
#include "uring-rx.h"

namespace nw {

/** The kernel's drop counter of one event socket as last read, and whether it may still grow
 *  unseen: after an ENOBUFS the socket stays congested (later overruns raise no new error,
 *  they only count) until a recv empties its queue, so it is read again once drained. */
struct DropWatch {
  uint32_t last = 0;  // a socket we opened starts at 0
  bool watching = false;
};

/** Delivers one batch (data = malloc'd batch buffer, freed here) to the JS callback, in the
 *  environment's pooled Buffer. */
void CallJsBatch(Napi::Env env, Napi::Function fn, BatchPool* pool, uint8_t* data);
using BatchTsfn = Napi::TypedThreadSafeFunction<BatchPool, uint8_t, CallJsBatch>;

struct ChannelFds {
  int ct = -1;      // subscribed to NFNLGRP_CONNTRACK_NEW/DESTROY (+UPDATE on demand)
  int dump = -1;    // table dumps
  int ifname = -1;  // AF_INET socket in the namespace, for SIOCGIFNAME
};

struct ChannelOptions {
  uint32_t batch_records = 4096;
  uint32_t batch_ms = 5;
  bool dump_on_start = true;
  /** While events flow, read the event socket once per hand-off window instead of once per
   *  wakeup: a wakeup costs more than the few events it would bring (only with a receive buffer
   *  large enough to hold a window's events). */
  bool coalesce = false;
  /** Receive slot per conntrack event datagram (default and maximum 4 KiB). Tests shrink it to
   *  make the kernel truncate events (MSG_TRUNC), which must count as loss. */
  uint32_t slot_bytes = 0;
};

class Reader;

/**
 * One source's sockets and reader-side state. Built on the JS thread, then owned by the Reader
 * (Add): the reader thread alone reads its sockets and state, closes the sockets and releases
 * the TSFN when the channel is removed. The JS thread touches only the atomics.
 */
class Channel {
 public:
  Channel(ChannelFds fds, ChannelOptions opts, BatchTsfn tsfn);
  ~Channel();
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;
  /** A bound NFLOG socket, before Add (afterwards: Reader::AddNflog). False when full. */
  bool AddNflogFd(int fd);
  /** The event socket, fixed from construction until the reader retires the channel. */
  int CtFd() const { return ct_port_.fd; }
  /** Longest a record waits in a partial batch from now on (any thread). */
  void SetBatchMs(uint32_t ms) { batch_ms_.store(ms, std::memory_order_relaxed); }
  /** How the reader receives conntrack events: "io_uring", "recvmmsg", or null until the reader
   *  has set the channel up (any thread). */
  const char* ReceivePath() const;

 private:
  friend class Reader;
  enum PortKind : uint8_t { kPortCt, kPortDump, kPortNflog };
  /** One socket in the epoll set; epoll_event.data.ptr points here. */
  struct Port {
    Channel* ch = nullptr;
    PortKind kind = kPortCt;
    int fd = -1;
    DropWatch drops;
  };

  ChannelOptions opts_;
  BatchTsfn tsfn_;
  std::atomic<bool> dump_req_{false};
  std::atomic<bool> closing_{false};
  std::atomic<uint32_t> batch_ms_{5};
  enum RxPath : uint8_t { kRxPending, kRxUring, kRxRecvmmsg };
  std::atomic<uint8_t> rx_path_{kRxPending};
  bool want_uring_ = true;  // NATWATCH_NO_IO_URING unset when the channel was built

  // Reader-thread state below.
  Port ct_port_;
  Port dump_port_;
  Port nflog_ports_[kMaxNflogGroups];
  uint32_t nflog_count_ = 0;
  int ifname_fd_ = -1;
  size_t slot_;
  std::unique_ptr<UringRx> rx_;  // null: recvmmsg
  BatchWriter ct_;
  BatchWriter nl_;
  LossCounters ct_loss_;
  LossCounters nl_loss_;
  int64_t ct_deadline_ = 0;
  int64_t nl_deadline_ = 0;
  int64_t ct_parked_until_ = 0;  // coalescing: the event socket is out of the epoll set till then
  bool dump_active_ = false;
  bool dump_intr_ = false;  // a message of the current dump carried NLM_F_DUMP_INTR
  uint32_t dump_seq_ = NlRandomSeq();  // unguessable: a forged NLMSG_DONE cannot end a dump
  IfnameCache ifnames_;
  SeqTracker seqs_;
};

/** The environment's reader thread. All methods run on the JS thread. */
class Reader {
 public:
  Reader() = default;
  ~Reader();
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  /** Takes ch over and starts the thread with the first channel. On failure (errno returned)
   *  ch is deleted here: its sockets closed, its TSFN released. */
  int Add(Channel* ch);
  /** Hands a bound NFLOG socket of a registered channel to the reader (which closes it). */
  void AddNflog(Channel* ch, int fd);
  /** Asks for a table dump on ch (coalesced with one already pending). */
  void RequestDump(Channel* ch);
  /** The reader stops reading ch at once, then closes its sockets and releases its TSFN on
   *  its thread; removing the last channel stops and joins the thread here. */
  void Remove(Channel* ch);

 private:
  enum CmdOp : uint8_t { kCmdAdd, kCmdAddNflog, kCmdRemove };
  struct Cmd {
    CmdOp op;
    Channel* ch;
    int fd;
  };

  int StartThread();
  void StopThread();
  void Post(Cmd c);
  void Wake();
  static void* Main(void* self);
  void Run();
  void ApplyCommands();
  void Watch(Channel::Port& p);
  void Retire(Channel* ch);
  /** Reads the event socket: the datagrams read, or -1 when cut short with more waiting. */
  int DrainConntrack(Channel& ch);
  int DrainRecvmmsg(Channel& ch);
  int DrainUring(Channel& ch);
  /** io_uring set up for the event socket, or recvmmsg when it cannot be (at Add). */
  void ChooseReceive(Channel& ch);
  void FallBack(Channel& ch);
  /** One event datagram, whichever way it was received. */
  void TakeEvent(Channel& ch, const sockaddr_nl& from, socklen_t namelen, int flags, const uint8_t* data,
                 size_t len, DecodeCounters& c);
  static int64_t WindowEnd(const Channel& ch, int64_t now);
  void Park(Channel& ch, int64_t until);
  void Unpark(Channel& ch);
  void ParkedRound(Channel& ch, int64_t now);
  void DrainDump(Channel& ch);
  void DrainNflog(Channel& ch, Channel::Port& p);
  void StartDump(Channel& ch);
  void EndDump(Channel& ch, int err);
  void FlushCt(Channel& ch);
  void FlushNl(Channel& ch);
  void Flush(Channel& ch, BatchWriter& w, LossCounters& loss, int64_t& deadline);

  // JS-thread state.
  size_t live_ = 0;  // channels added and not removed
  bool running_ = false;
  pthread_t thread_{};

  // Shared.
  int epfd_ = -1;
  int wake_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<Cmd> pending_;  // guarded by mu_

  // Reader-thread state.
  std::vector<Channel*> channels_;
  uint8_t* rxbuf_ = nullptr;
  double now_ms_ = 0;
};

}  // namespace nw
