// io_uring receive of one netlink event socket: a multishot IORING_OP_RECVMSG taking its
// buffers from a provided buffer ring, on a ring set up for one thread (SINGLE_ISSUER,
// DEFER_TASKRUN: the receives run only when that thread enters, so it still chooses when to
// read, as with recvmmsg). Raw syscalls and the kernel's uapi header only (no liburing).
// Measured 26-27 % cheaper per event than recvmmsg with the same sender check (BENCHMARKS.md,
// "io_uring receive"). Every method must run on the thread that called Open.
#pragma once
#include <linux/netlink.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>

namespace nw {

/** One received datagram, valid until the Reap call that gave it returns. */
struct UringDatagram {
  const sockaddr_nl* from;
  socklen_t namelen;
  int flags;  // msg_flags: MSG_TRUNC when the datagram did not fit its buffer
  const uint8_t* data;
  size_t len;
};

/** What one Reap found besides datagrams. */
struct UringReap {
  int datagrams = 0;
  bool ended = false;    // the multishot stopped: Arm again
  bool overrun = false;  // it stopped on the socket's ENOBUFS (events lost), not on a dry ring
  int error = 0;         // it stopped on another error (errno): io_uring cannot read this socket
};

class UringRx {
 public:
  /** A ring reading `sock` into buffers of `payload` bytes each, armed (the receive may have
   *  completed datagrams already: Reap soon). Null with errno when
   *  io_uring cannot be used here (no io_uring, seccomp, io_uring_disabled, an older kernel
   *  without these setup flags, buffer rings or multishot recvmsg). */
  static UringRx* Open(int sock, size_t payload);
  /** Cancels the receive and frees the ring and its buffers. */
  ~UringRx();
  UringRx(const UringRx&) = delete;
  UringRx& operator=(const UringRx&) = delete;

  /** Submits the multishot receive; errno on failure. */
  int Arm();
  /** Runs the receives queued since the last enter (a pass of up to ≈ 32 datagrams each);
   *  0 or errno. */
  int Enter();
  /** True while the kernel has receive work queued that only another Enter runs. */
  bool WorkPending() const;
  /** Hands every completed datagram to fn(const UringDatagram&) and returns its buffer to the
   *  ring. */
  template <typename Fn>
  UringReap Reap(Fn&& fn);

 private:
  UringRx() = default;
  int Setup(int sock, size_t payload);
  bool NextCqe(int* res, uint32_t* flags, uint64_t* user_data);
  const uint8_t* Buffer(uint16_t bid) const { return bufs_ + size_t(bid) * buf_size_; }
  void Recycle(uint16_t bid);
  void Publish();
  bool Submit(uint8_t opcode, uint64_t user_data, uint64_t addr);

  int fd_ = -1;
  int sock_ = -1;
  void* ring_ = nullptr;
  size_t ring_size_ = 0;
  void* sqes_ = nullptr;
  size_t sqes_size_ = 0;
  void* br_ = nullptr;  // struct io_uring_buf_ring
  uint8_t* bufs_ = nullptr;
  size_t buf_size_ = 0;
  unsigned *sq_tail_ = nullptr, *sq_mask_ = nullptr, *sq_flags_ = nullptr;
  unsigned *cq_head_ = nullptr, *cq_tail_ = nullptr, *cq_mask_ = nullptr;
  void* cqes_ = nullptr;
  uint16_t br_tail_ = 0;    // buffers handed back to the ring (the next tail)
  uint16_t published_ = 0;  // the tail as last stored for the kernel
  uint16_t consumed_ = 0;   // buffers the kernel took: its head
  bool armed_ = false;      // a multishot is in flight
};

// What precedes each payload in a buffer: io_uring_recvmsg_out, then the name, reserved at 16
// bytes rather than sockaddr_nl's 12 so that the netlink messages start 4-byte aligned.
constexpr unsigned kUringBuffers = 64;  // a power of 2; a pass takes ≈ 33 and they are recycled
constexpr size_t kUringNameRoom = 16;
constexpr size_t kUringHeader = 16 + kUringNameRoom;  // sizeof(io_uring_recvmsg_out) is 16

uint16_t UringBufferId(uint32_t cqe_flags);
bool UringHasBuffer(uint32_t cqe_flags);
bool UringMore(uint32_t cqe_flags);
bool UringDatagramAt(const uint8_t* buf, int res, UringDatagram* d);

template <typename Fn>
UringReap UringRx::Reap(Fn&& fn) {
  UringReap r;
  int res;
  uint32_t flags;
  uint64_t ud;
  while (NextCqe(&res, &flags, &ud)) {
    if (UringHasBuffer(flags) && UringBufferId(flags) < kUringBuffers) {
      const uint16_t bid = UringBufferId(flags);
      consumed_++;
      UringDatagram d;
      if (UringDatagramAt(Buffer(bid), res, &d)) {
        r.datagrams++;
        fn(d);
      }
      Recycle(bid);
    }
    if (ud != 1 || UringMore(flags)) continue;  // 1: the receive; others: its cancel
    armed_ = false;
    r.ended = true;
    if (res == -ENOBUFS) {
      // No buffer left, or the socket overran: the kernel takes a buffer only for a datagram
      // it delivers, so its head against the tail it last saw tells them apart. An overrun
      // pending behind a dry ring is reported after the re-arm.
      if (uint16_t(published_ - consumed_) != 0) r.overrun = true;
    } else if (res < 0 && res != -EINTR && res != -ECANCELED) {
      r.error = -res;
    }
  }
  Publish();
  return r;
}

}  // namespace nw
