// NFLOG group configuration over nfnetlink_log (linux/netfilter/nfnetlink_log.h).
#pragma once
#include <cstdint>

namespace nw {

/** Copy range asked for each logged packet: enough for IPv6 + extension headers + L4 ports. */
constexpr uint32_t kNflogCopyRange = 128;
/** Flush interval asked of the kernel, in 1/100 s (default is 1 s): alerts want it sooner. */
constexpr uint32_t kNflogTimeout = 10;

/**
 * Binds `group` on fd (NFULNL_CFG_CMD_BIND), then sets copy-packet mode, NFULNL_CFG_F_SEQ and
 * the flush timeout, each acknowledged. Returns 0 or errno: EPERM (EBUSY on some kernels) when
 * another socket (ulogd?) holds the group, EPERM also without CAP_NET_ADMIN.
 * NFULNL_CFG_CMD_PF_UNBIND/PF_BIND are not sent: they are no-ops since Linux 3.17.
 */
int NflogBind(int fd, uint16_t group, uint32_t* seq);

}  // namespace nw
