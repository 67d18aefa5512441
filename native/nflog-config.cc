#include "nflog-config.h"

#include <arpa/inet.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_log.h>
#include <sys/socket.h>

#include <cerrno>

#include "netlink-socket.h"

namespace nw {
namespace {

constexpr int kAckTimeoutMs = 2000;
constexpr uint16_t kConfigType = (NFNL_SUBSYS_ULOG << 8) | NFULNL_MSG_CONFIG;

int Send(int fd, uint16_t group, uint32_t seq, uint16_t attr, const void* data, uint16_t len) {
  alignas(nlmsghdr) uint8_t buf[128];
  nlmsghdr* nlh = NlStart(buf, sizeof(buf), kConfigType, NLM_F_REQUEST | NLM_F_ACK, AF_UNSPEC,
                          group, seq);
  if (!nlh || !NlPutAttr(buf, sizeof(buf), attr, data, len)) return EINVAL;
  int err = NlSend(fd, nlh);
  if (err) return err;
  return NlTransact(fd, seq, kAckTimeoutMs, nullptr, nullptr);
}

}  // namespace

int NflogBind(int fd, uint16_t group, uint32_t* seq) {
  nfulnl_msg_config_cmd cmd{NFULNL_CFG_CMD_BIND};
  int err = Send(fd, group, ++*seq, NFULA_CFG_CMD, &cmd, sizeof(cmd));
  if (err) return err;
  nfulnl_msg_config_mode mode{};
  mode.copy_range = htonl(kNflogCopyRange);
  mode.copy_mode = NFULNL_COPY_PACKET;
  err = Send(fd, group, ++*seq, NFULA_CFG_MODE, &mode, sizeof(mode));
  if (err) return err;
  uint16_t flags = htons(NFULNL_CFG_F_SEQ);
  err = Send(fd, group, ++*seq, NFULA_CFG_FLAGS, &flags, sizeof(flags));
  if (err) return err;
  uint32_t timeout = htonl(kNflogTimeout);
  return Send(fd, group, ++*seq, NFULA_CFG_TIMEOUT, &timeout, sizeof(timeout));
}

}  // namespace nw
