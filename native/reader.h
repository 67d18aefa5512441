// One named reader thread per source: poll()s the conntrack event socket, the dump socket, the
// NFLOG socket and an eventfd (stop / resync), drains several datagrams per wakeup, and hands
// batches to JS through a thread-safe function with a bounded queue.
//
// Loss accounting, all of it reported in the next batch header (batch-layout.h):
// - the kernel could not queue events to a socket: ENOBUFS, plus the exact count from
//   SO_MEMINFO;
// - the reader lost events itself: a truncated datagram (MSG_TRUNC), no memory for a batch;
// - datagrams from anyone but the kernel (nl_pid != 0) are dropped and counted, not decoded.
// When the queue towards JS is full the thread waits (it does not drop): events then wait in
// the large socket buffer, whose overflow the kernel counts exactly.
#pragma once
#include <napi.h>
#include <pthread.h>

#include <atomic>
#include <cstdint>

#include "batch-writer.h"
#include "decode.h"
#include "ifname-cache.h"
#include "netlink-socket.h"
#include "records.h"

namespace nw {

/** The kernel's drop counter of one event socket as last read, and whether it may still grow
 *  unseen: after an ENOBUFS the socket stays congested (later overruns raise no new error,
 *  they only count) until a recv empties its queue, so it is read again once drained. */
struct DropWatch {
  uint32_t last = 0;  // a socket we opened starts at 0
  bool watching = false;
};

/** Delivers one batch (data = malloc'd batch buffer, freed here) to the JS callback. */
void CallJsBatch(Napi::Env env, Napi::Function fn, std::nullptr_t*, uint8_t* data);
using BatchTsfn = Napi::TypedThreadSafeFunction<std::nullptr_t, uint8_t, CallJsBatch>;

struct ReaderFds {
  int ct = -1;      // subscribed to NFNLGRP_CONNTRACK_{NEW,UPDATE,DESTROY}
  int dump = -1;    // table dumps
  int nflog = -1;   // bound NFLOG groups
  int ifname = -1;  // AF_INET socket in the namespace, for SIOCGIFNAME
};

struct ReaderOptions {
  uint32_t batch_records = 4096;
  uint32_t batch_ms = 5;
  bool dump_on_start = true;
  /** After a wakeup that found events, wait this long before polling again so that one wakeup
   *  drains many events instead of one each (0 = off; only safe with a large receive buffer). */
  uint32_t coalesce_us = 0;
  /** Receive slot per conntrack event datagram (default and maximum 4 KiB). Tests shrink it to
   *  make the kernel truncate events (MSG_TRUNC), which must count as loss. */
  uint32_t slot_bytes = 0;
};

class Reader {
 public:
  Reader(ReaderFds fds, ReaderOptions opts, BatchTsfn tsfn);
  ~Reader();
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  /** Spawns the thread; errno on failure (the TSFN is then released here). */
  int Start();
  /** Asks for a table dump (coalesced with one already pending). Any thread. */
  void RequestDump();
  /** Stops and joins the thread (it flushes and releases the TSFN on its way out). */
  void Stop();

 private:
  static void* Main(void* self);
  void Run();
  void DrainConntrack();
  void DrainDump();
  void DrainNflog();
  void StartDump();
  void EndDump(int err);
  void Flush(BatchWriter& w, LossCounters& loss, int64_t& deadline);
  bool ReadDrops(int fd, DropWatch& d, LossCounters& loss);
  void Overrun(int fd, DropWatch& d, LossCounters& loss, int64_t& deadline);
  void DrainedAfterLoss(int fd, DropWatch& d, LossCounters& loss, int64_t& deadline);
  void Arm(int64_t& deadline);
  void Wake();

  ReaderFds fds_;
  ReaderOptions opts_;
  BatchTsfn tsfn_;
  int wake_fd_ = -1;
  pthread_t thread_{};
  bool running_ = false;
  std::atomic<bool> stop_{false};
  std::atomic<bool> dump_req_{false};

  // Reader-thread state below.
  uint8_t* rxbuf_ = nullptr;
  BatchWriter ct_;
  size_t slot_;
  BatchWriter nl_;
  LossCounters ct_loss_;
  LossCounters nl_loss_;
  DropWatch ct_drops_;
  DropWatch nl_drops_;
  int64_t ct_deadline_ = 0;
  int64_t nl_deadline_ = 0;
  bool dump_active_ = false;
  bool dump_intr_ = false;  // a message of the current dump carried NLM_F_DUMP_INTR
  uint32_t dump_seq_ = NlRandomSeq();  // unguessable: a forged NLMSG_DONE cannot end a dump
  double now_ms_ = 0;
  IfnameCache ifnames_;
  SeqTracker seqs_;
};

}  // namespace nw
