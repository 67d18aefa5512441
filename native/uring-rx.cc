#include "uring-rx.h"

#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>

namespace nw {
namespace {

constexpr unsigned kSqEntries = 4;   // the receive and its cancel
constexpr unsigned kCqEntries = 256;  // a pass posts at most one CQE per buffer
constexpr unsigned kBuffers = kUringBuffers;
constexpr uint16_t kGroup = 0;
constexpr uint64_t kRecvData = 1;
constexpr uint64_t kCancelData = 2;
constexpr int kCancelRounds = 16;

// What the multishot recvmsg reads: the name before each payload, no control data.
const msghdr kRecvMsg = [] {
  msghdr m{};
  m.msg_namelen = kUringNameRoom;
  return m;
}();

int SysSetup(unsigned entries, io_uring_params* p) { return int(syscall(__NR_io_uring_setup, entries, p)); }
int SysEnter(int fd, unsigned submit, unsigned min_complete, unsigned flags) {
  return int(syscall(__NR_io_uring_enter, fd, submit, min_complete, flags, nullptr, 0));
}

template <typename T>
T* At(void* base, uint32_t off) {
  return reinterpret_cast<T*>(static_cast<uint8_t*>(base) + off);
}

}  // namespace

bool UringHasBuffer(uint32_t f) { return f & IORING_CQE_F_BUFFER; }
bool UringMore(uint32_t f) { return f & IORING_CQE_F_MORE; }
uint16_t UringBufferId(uint32_t f) { return uint16_t(f >> IORING_CQE_BUFFER_SHIFT); }

bool UringDatagramAt(const uint8_t* buf, int res, UringDatagram* d) {
  if (res < int(kUringHeader)) return false;  // cannot happen with a buffer of kUringHeader + payload
  io_uring_recvmsg_out o;
  std::memcpy(&o, buf, sizeof(o));
  static_assert(sizeof(io_uring_recvmsg_out) == 16, "kUringHeader assumes a 16-byte io_uring_recvmsg_out");
  d->from = reinterpret_cast<const sockaddr_nl*>(buf + sizeof(o));
  d->namelen = o.namelen > kUringNameRoom ? socklen_t(kUringNameRoom) : socklen_t(o.namelen);
  d->flags = int(o.flags);
  d->data = buf + kUringHeader;
  const size_t room = size_t(res) - kUringHeader;  // what the kernel wrote after the header
  d->len = o.payloadlen < room ? o.payloadlen : room;
  return true;
}

UringRx* UringRx::Open(int sock, size_t payload) {
  UringRx* u = new UringRx();
  int e = u->Setup(sock, payload);
  if (e == 0) e = u->Arm();
  if (e != 0) {
    delete u;
    errno = e;
    return nullptr;
  }
  return u;
}

int UringRx::Setup(int sock, size_t payload) {
  sock_ = sock;
  io_uring_params p{};
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_TASKRUN_FLAG |
            IORING_SETUP_CQSIZE;
  p.cq_entries = kCqEntries;
  fd_ = SysSetup(kSqEntries, &p);
  if (fd_ < 0) return errno;
  if (!(p.features & IORING_FEAT_SINGLE_MMAP)) return EINVAL;
  const size_t sq = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  const size_t cq = p.cq_off.cqes + p.cq_entries * sizeof(io_uring_cqe);
  ring_size_ = sq > cq ? sq : cq;
  void* r = mmap(nullptr, ring_size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd_, IORING_OFF_SQ_RING);
  if (r == MAP_FAILED) return errno;
  ring_ = r;
  sqes_size_ = p.sq_entries * sizeof(io_uring_sqe);
  void* s = mmap(nullptr, sqes_size_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd_, IORING_OFF_SQES);
  if (s == MAP_FAILED) return errno;
  sqes_ = s;
  sq_tail_ = At<unsigned>(ring_, p.sq_off.tail);
  sq_mask_ = At<unsigned>(ring_, p.sq_off.ring_mask);
  sq_flags_ = At<unsigned>(ring_, p.sq_off.flags);
  unsigned* array = At<unsigned>(ring_, p.sq_off.array);
  for (unsigned i = 0; i < p.sq_entries; i++) array[i] = i;
  cq_head_ = At<unsigned>(ring_, p.cq_off.head);
  cq_tail_ = At<unsigned>(ring_, p.cq_off.tail);
  cq_mask_ = At<unsigned>(ring_, p.cq_off.ring_mask);
  cqes_ = At<void>(ring_, p.cq_off.cqes);
  // The provided buffer ring (page aligned, 16 bytes an entry) and the buffers, each the
  // header and one slot of payload: a datagram larger than the slot is truncated (MSG_TRUNC).
  buf_size_ = (kUringHeader + payload + 63) & ~size_t(63);
  void* br = mmap(nullptr, kBuffers * sizeof(io_uring_buf), PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (br == MAP_FAILED) return errno;
  br_ = br;
  void* b = mmap(nullptr, kBuffers * buf_size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (b == MAP_FAILED) return errno;
  bufs_ = static_cast<uint8_t*>(b);
  io_uring_buf_reg reg{};
  reg.ring_addr = uint64_t(uintptr_t(br_));
  reg.ring_entries = kBuffers;
  reg.bgid = kGroup;
  if (syscall(__NR_io_uring_register, fd_, IORING_REGISTER_PBUF_RING, &reg, 1) < 0) return errno;
  for (unsigned i = 0; i < kBuffers; i++) Recycle(uint16_t(i));
  Publish();
  return 0;
}

// The ring is an array of io_uring_buf from its first byte, its tail overlaid on entry 0's resv.
// Not io_uring_buf_ring::bufs: in C++ its flexible-array macro puts a 1-byte empty struct first,
// which moves bufs to offset 8 (the kernel then reads bid and len from the wrong bytes).
static_assert(sizeof(io_uring_buf) == 16, "an io_uring_buf_ring entry is 16 bytes");
static_assert(offsetof(io_uring_buf_ring, tail) == 14, "the tail is entry 0's resv");

void UringRx::Recycle(uint16_t bid) {
  io_uring_buf* e = &static_cast<io_uring_buf*>(br_)[br_tail_ & (kBuffers - 1)];
  e->addr = uint64_t(uintptr_t(Buffer(bid)));
  e->len = uint32_t(buf_size_);
  e->bid = bid;
  br_tail_++;
}

void UringRx::Publish() {
  if (published_ == br_tail_) return;
  __atomic_store_n(&static_cast<io_uring_buf_ring*>(br_)->tail, br_tail_, __ATOMIC_RELEASE);
  published_ = br_tail_;
}

bool UringRx::Submit(uint8_t opcode, uint64_t user_data, uint64_t addr) {
  const unsigned tail = *sq_tail_;
  io_uring_sqe* sqe = &static_cast<io_uring_sqe*>(sqes_)[tail & *sq_mask_];
  std::memset(sqe, 0, sizeof(*sqe));
  sqe->opcode = opcode;
  sqe->user_data = user_data;
  sqe->addr = addr;
  if (opcode == IORING_OP_RECVMSG) {
    sqe->fd = sock_;
    sqe->len = 1;
    sqe->ioprio = IORING_RECV_MULTISHOT;
    sqe->flags = IOSQE_BUFFER_SELECT;
    sqe->buf_group = kGroup;
  } else {
    sqe->fd = -1;
  }
  __atomic_store_n(sq_tail_, tail + 1, __ATOMIC_RELEASE);
  for (int i = 0; i < 8; i++) {
    int n = SysEnter(fd_, 1, 0, 0);
    if (n == 1) return true;
    if (n < 0 && errno != EINTR && errno != EAGAIN) break;
  }
  *sq_tail_ = tail;  // not taken: withdraw it
  return false;
}

int UringRx::Arm() {
  if (!Submit(IORING_OP_RECVMSG, kRecvData, uint64_t(uintptr_t(&kRecvMsg)))) return errno ? errno : EIO;
  armed_ = true;
  return 0;
}

int UringRx::Enter() {
  if (SysEnter(fd_, 0, 0, IORING_ENTER_GETEVENTS) < 0 && errno != EINTR) return errno;
  return 0;
}

bool UringRx::WorkPending() const { return __atomic_load_n(sq_flags_, __ATOMIC_ACQUIRE) & IORING_SQ_TASKRUN; }

bool UringRx::NextCqe(int* res, uint32_t* flags, uint64_t* user_data) {
  const unsigned head = *cq_head_;
  if (head == __atomic_load_n(cq_tail_, __ATOMIC_ACQUIRE)) return false;
  const io_uring_cqe* c = &static_cast<io_uring_cqe*>(cqes_)[head & *cq_mask_];
  *res = c->res;
  *flags = c->flags;
  *user_data = c->user_data;
  __atomic_store_n(cq_head_, head + 1, __ATOMIC_RELEASE);
  return true;
}

UringRx::~UringRx() {
  bool quiet = !armed_;
  if (armed_ && fd_ >= 0 && Submit(IORING_OP_ASYNC_CANCEL, kCancelData, kRecvData)) {
    for (int i = 0; i < kCancelRounds && armed_; i++) {
      if (Enter() != 0) break;
      Reap([](const UringDatagram&) {});
    }
    quiet = !armed_;
  }
  if (fd_ >= 0) close(fd_);
  if (ring_) munmap(ring_, ring_size_);
  if (sqes_) munmap(sqes_, sqes_size_);
  // A receive never confirmed cancelled might still write into its buffers: leave them mapped
  // (never seen; closing the ring cancels it in the kernel) rather than let the addresses be
  // reused under it.
  if (!quiet) return;
  if (br_) munmap(br_, kBuffers * sizeof(io_uring_buf));
  if (bufs_) munmap(bufs_, kBuffers * buf_size_);
}

}  // namespace nw
