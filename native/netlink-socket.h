// NETLINK_NETFILTER socket plumbing: open, subscribe, size the receive buffer, and small
// synchronous request/ack exchanges (config and stats; the event path never blocks).
#pragma once
#include <linux/netlink.h>
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>

namespace nw {

/** Non-blocking, close-on-exec NETLINK_NETFILTER socket bound to an automatic port id; -errno. */
int NlOpen();

/** NETLINK_ADD_MEMBERSHIP for one group number (1-based, not the legacy bitmask); errno. */
int NlJoinGroup(int fd, unsigned group);

/** NETLINK_DROP_MEMBERSHIP: the inverse (the kernel stops queueing that group at once); errno. */
int NlLeaveGroup(int fd, unsigned group);

/** SO_RCVBUFFORCE (falls back to SO_RCVBUF when not privileged); returns the effective size
 *  the kernel reports (getsockopt SO_RCVBUF), or -errno. */
int NlSetRcvbuf(int fd, int bytes);

/** Messages the kernel could not queue to this socket since it was opened (getsockopt
 *  SO_MEMINFO, SK_MEMINFO_DROPS: the Drops column of /proc/net/netlink); -errno. One system
 *  call: for after an ENOBUFS, never per message. */
int64_t NlDrops(int fd);

/** Appends one attribute to a message being built in buf (capacity cap); false if no room. */
bool NlPutAttr(uint8_t* buf, size_t cap, uint16_t type, const void* data, uint16_t len);

/** Starts a netfilter message: nlmsghdr + nfgenmsg in buf; returns its header. */
nlmsghdr* NlStart(uint8_t* buf, size_t cap, uint16_t type, uint16_t flags, uint8_t family,
                  uint16_t res_id_host, uint32_t seq);

/** A sequence number nobody else can predict (getrandom), for requests whose replies we match
 *  by seq: a guessable one lets a process that can write to our socket fake the end of a dump. */
uint32_t NlRandomSeq();

/** Whether a datagram's source address is the kernel (nl_pid 0). Any other sender is a process
 *  that wrote to our port id (it needs CAP_NET_ADMIN, but a daemon trusts only the kernel). */
inline bool NlFromKernel(const sockaddr_nl& from, socklen_t len) {
  return len >= sizeof(sockaddr_nl) && from.nl_family == AF_NETLINK && from.nl_pid == 0;
}

/** Sends a complete message; errno. */
int NlSend(int fd, const nlmsghdr* nlh);

/**
 * Reads replies to `seq` until the ack / NLMSG_DONE (or an NLMSG_ERROR), calling
 * fn(ctx, nlh) for each data message; messages with another seq are skipped (on an NFLOG
 * socket that includes packets of a group bound a moment earlier). Datagrams not sent by the
 * kernel are skipped and counted in *foreign (when given). Returns 0 or the kernel's errno
 * (positive; from NLMSG_ERROR or a failed dump's NLMSG_DONE), EPROTO for a malformed reply,
 * ETIMEDOUT after timeout_ms.
 */
int NlTransact(int fd, uint32_t seq, int timeout_ms, void (*fn)(void*, const nlmsghdr*),
               void* ctx, uint32_t* foreign = nullptr);

}  // namespace nw
