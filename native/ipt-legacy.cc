// iptables-legacy (x_tables) tables, which nf_tables dumps do not show: the table blob that
// IPT_SO_GET_ENTRIES returns (what iptables-legacy-save reads), decoded entry by entry.
//
// Reading: the table names come from /proc/thread-self/net/ip_tables_names (the helper
// thread's namespace; the file is mode 0440 root). Asking for a table by name instead would
// load and instantiate it in the namespace (xt_find_table_lock), which starts conntrack
// tracking there, so a table that is not listed is never asked for. getsockopt goes through
// an AF_INET datagram socket: ip_getsockopt hands unknown options to nf_getsockopt, which
// checks CAP_NET_ADMIN only (a raw socket would need CAP_NET_RAW too).
#include "ipt-legacy.h"

#include <fcntl.h>
#include <linux/netfilter.h>
#include <linux/netfilter_ipv4/ip_tables.h>
#include <linux/netfilter_ipv6/ip6_tables.h>
#include <linux/netfilter/nf_tables.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "facts-writer.h"

namespace nw {
namespace {

const char* const kHookNames[5] = {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"};

struct Layout {
  size_t entry_size;     // sizeof(ipt_entry) / sizeof(ip6t_entry)
  size_t target_off;     // offsetof(.., target_offset)
  size_t next_off;       // offsetof(.., next_offset)
  size_t outiface;       // offsetof(.., ip.outiface)
  size_t outiface_mask;  // offsetof(.., ip.outiface_mask)
  size_t proto;          // offsetof(.., ip.proto)
  size_t flags;          // offsetof(.., ip.flags) (IPv6: IP6T_F_PROTO says proto is set)
  size_t invflags;       // offsetof(.., ip.invflags)
  uint8_t inv_via_out;
  uint8_t inv_proto;
};

const Layout kV4 = {sizeof(ipt_entry),          offsetof(ipt_entry, target_offset), offsetof(ipt_entry, next_offset),
                    offsetof(ipt_entry, ip.outiface), offsetof(ipt_entry, ip.outiface_mask),
                    offsetof(ipt_entry, ip.proto), offsetof(ipt_entry, ip.flags), offsetof(ipt_entry, ip.invflags),
                    IPT_INV_VIA_OUT,            IPT_INV_PROTO};
const Layout kV6 = {sizeof(ip6t_entry),           offsetof(ip6t_entry, target_offset),
                    offsetof(ip6t_entry, next_offset), offsetof(ip6t_entry, ipv6.outiface),
                    offsetof(ip6t_entry, ipv6.outiface_mask), offsetof(ip6t_entry, ipv6.proto),
                    offsetof(ip6t_entry, ipv6.flags), offsetof(ip6t_entry, ipv6.invflags),
                    IP6T_INV_VIA_OUT,             IP6T_INV_PROTO};

uint16_t U16At(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

void EmitChain(FactsWriter& w, uint8_t nfproto, const char* table, const char* chain, bool hook, uint32_t hooknum) {
  w.Begin(kItemChain);
  w.U8(nfproto);
  w.U8(kOriginLegacy);
  w.U8(hook);
  w.U8(0);
  w.U32(hooknum);
  w.I32(0);
  w.StrZ(table, XT_TABLE_MAXNAMELEN);
  w.StrZ(chain, XT_EXTENSION_MAXNAMELEN);
  w.StrZ(hook && std::strcmp(table, "nat") == 0 ? "nat" : "filter", 8);
  w.End();
}

}  // namespace

uint32_t DecodeIptEntries(uint8_t family, const char* table, uint32_t valid_hooks, const uint32_t hook_entry[5],
                          const uint32_t underflow[5], const uint8_t* blob, size_t len, FactsWriter& out) {
  const Layout& L = family == 6 ? kV6 : kV4;
  const uint8_t nfproto = family == 6 ? NFPROTO_IPV6 : NFPROTO_IPV4;
  std::string chain;
  uint64_t index = 0;
  size_t off = 0;
  while (off < len) {
    if (len - off < L.entry_size) return 1;
    const uint8_t* e = blob + off;
    const uint16_t target_offset = U16At(e + L.target_off);
    const uint16_t next_offset = U16At(e + L.next_off);
    if (next_offset < L.entry_size || next_offset > len - off || target_offset < L.entry_size ||
        size_t(target_offset) + sizeof(xt_entry_target) > next_offset) {
      return 1;
    }
    bool policy = false;
    for (int h = 0; h < 5; h++) {
      if (!(valid_hooks & (1u << h))) continue;
      if (hook_entry[h] == off) {
        chain = kHookNames[h];
        EmitChain(out, nfproto, table, chain.c_str(), true, uint32_t(h));
      }
      if (underflow[h] == off) policy = true;
    }
    const uint8_t* t = e + target_offset;
    const uint16_t tsize = U16At(t);
    if (tsize < sizeof(xt_entry_target) || tsize > next_offset - target_offset) return 1;
    char tname[XT_EXTENSION_MAXNAMELEN + 1] = {};
    std::memcpy(tname, t + 2, XT_EXTENSION_MAXNAMELEN);
    const uint8_t trev = t[2 + XT_EXTENSION_MAXNAMELEN];
    const uint8_t* tdata = t + sizeof(xt_entry_target);
    const size_t tdlen = tsize - sizeof(xt_entry_target);
    off += next_offset;
    if (std::strcmp(tname, XT_ERROR_TARGET) == 0) {
      // A user chain's head carries its name; the table's last entry says "ERROR".
      char cname[XT_FUNCTION_MAXNAMELEN + 1] = {};
      std::memcpy(cname, tdata, tdlen < XT_FUNCTION_MAXNAMELEN ? tdlen : XT_FUNCTION_MAXNAMELEN);
      if (std::strcmp(cname, XT_ERROR_TARGET) == 0) break;
      chain = cname;
      EmitChain(out, nfproto, table, cname, false, 0);
      continue;
    }
    if (policy) continue;  // a built-in chain's policy, not a rule
    out.Begin(kItemRule);
    out.U8(nfproto);
    out.U8(kOriginLegacy);
    out.Zero(6);
    out.U64(++index);
    out.StrZ(table, XT_TABLE_MAXNAMELEN);
    out.StrZ(chain.c_str(), XT_FUNCTION_MAXNAMELEN);
    out.End();
    const uint8_t inv = e[L.invflags];
    const char* oif = reinterpret_cast<const char*>(e + L.outiface);
    size_t oiflen = strnlen(oif, IFNAMSIZ);
    if (oiflen) {
      // `-o eth+` matches the prefix: the mask then stops before the name's NUL.
      const bool prefix = oiflen < IFNAMSIZ && e[L.outiface_mask + oiflen] == 0;
      out.Begin(kItemOif);
      out.U8((inv & L.inv_via_out) ? 1 : 0);
      out.U8(0);
      out.U8(prefix ? 1 : 0);
      out.U8(0);
      out.Str(oif, oiflen);
      out.End();
    }
    const uint16_t proto = U16At(e + L.proto);
    if (proto && proto < 256 && (family != 6 || (e[L.flags] & IP6T_F_PROTO))) {
      out.Begin(kItemProto);
      out.U8((inv & L.inv_proto) ? 1 : 0);
      out.U8(uint8_t(proto));
      out.U16(0);
      out.End();
    }
    // Matches sit between the entry and its target.
    for (size_t m = L.entry_size; m + sizeof(xt_entry_match) <= target_offset;) {
      const uint16_t msize = U16At(e + m);
      if (msize < sizeof(xt_entry_match) || msize > target_offset - m) return 1;
      out.Begin(kItemXtMatch);
      out.U8(e[m + 2 + XT_EXTENSION_MAXNAMELEN]);
      out.Zero(3);
      out.Str(reinterpret_cast<const char*>(e + m + 2), XT_EXTENSION_MAXNAMELEN);
      out.End();
      m += msize;
    }
    if (tname[0] == 0) {  // XT_STANDARD_TARGET: a verdict or a jump
      if (tdlen < sizeof(int)) return 1;
      int v;
      std::memcpy(&v, tdata, sizeof(v));
      out.Begin(kItemVerdict);
      out.I32(v == XT_RETURN ? NFT_RETURN : v < 0 ? -v - 1 : NFT_JUMP);
      out.End();
      continue;
    }
    out.Begin(kItemXtTarget);
    out.U8(trev);
    out.Zero(3);
    out.Str(tname, XT_EXTENSION_MAXNAMELEN);
    out.End();
    if (!DecodeXtTarget(tname, trev, nfproto, tdata, tdlen, out)) return 1;
  }
  return 0;
}

void ReadIptLegacy(uint8_t family, FactsWriter& out) {
  const uint8_t section = family == 6 ? kSecIp6tLegacy : kSecIptLegacy;
  const char* names_path = family == 6 ? "/proc/thread-self/net/ip6_tables_names" : "/proc/thread-self/net/ip_tables_names";
  int nfd = open(names_path, O_RDONLY | O_CLOEXEC);
  if (nfd < 0) {
    // ENOENT: x_tables is not in this kernel, so no legacy table can exist.
    if (errno != ENOENT) out.Error(section, errno, "tables-names");
    return;
  }
  char names[1024];
  ssize_t n = read(nfd, names, sizeof(names) - 1);
  int rerr = errno;
  close(nfd);
  if (n < 0) {
    out.Error(section, rerr, "tables-names");
    return;
  }
  names[n] = 0;
  int fd = socket(family == 6 ? AF_INET6 : AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    out.Error(section, errno, "socket");
    return;
  }
  const int level = family == 6 ? IPPROTO_IPV6 : IPPROTO_IP;
  const int opt_info = family == 6 ? IP6T_SO_GET_INFO : IPT_SO_GET_INFO;
  const int opt_entries = family == 6 ? IP6T_SO_GET_ENTRIES : IPT_SO_GET_ENTRIES;
  uint32_t errors = 0;
  for (char* save = nullptr; char* name = strtok_r(save ? nullptr : names, "\n", &save);) {
    if (std::strlen(name) >= XT_TABLE_MAXNAMELEN) continue;
    // ipt_getinfo and ip6t_getinfo share their layout, as do the get_entries headers.
    int err = 0;
    for (int tries = 0; tries < 3; tries++) {
      ipt_getinfo info{};
      std::strcpy(info.name, name);
      socklen_t ilen = sizeof(info);
      if (getsockopt(fd, level, opt_info, &info, &ilen) != 0) {
        err = errno;
        break;
      }
      socklen_t elen = socklen_t(sizeof(ipt_get_entries) + info.size);
      ipt_get_entries* ge = static_cast<ipt_get_entries*>(std::calloc(1, elen));
      if (!ge) {
        err = ENOMEM;
        break;
      }
      std::strcpy(ge->name, name);
      ge->size = info.size;
      if (getsockopt(fd, level, opt_entries, ge, &elen) != 0) {
        err = errno;
        std::free(ge);
        if (err == EAGAIN) continue;  // the table changed between the two calls
        break;
      }
      err = 0;
      uint32_t pre[11] = {info.valid_hooks};
      std::memcpy(pre + 1, info.hook_entry, sizeof(info.hook_entry));
      std::memcpy(pre + 6, info.underflow, sizeof(info.underflow));
      uint8_t prefix[sizeof(pre) + XT_TABLE_MAXNAMELEN] = {};
      std::memcpy(prefix, pre, sizeof(pre));
      std::memcpy(prefix + sizeof(pre), name, std::strlen(name));
      out.Capture(section, ge->entrytable, info.size, prefix, sizeof(prefix));
      errors += DecodeIptEntries(family, name, info.valid_hooks, info.hook_entry, info.underflow,
                                 reinterpret_cast<const uint8_t*>(ge->entrytable), info.size, out);
      std::free(ge);
      break;
    }
    if (err) out.Error(section, err, "getsockopt");
  }
  close(fd);
  out.DecodeErrors(section, errors);
}

}  // namespace nw
