// Conntrack messages (IPCTNL_MSG_CT_NEW / IPCTNL_MSG_CT_DELETE) → conntrack records, and the
// per-CPU / global stats replies. Attribute numbers from linux/netfilter/nfnetlink_conntrack.h.
#include <arpa/inet.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <netinet/in.h>

#include <cstring>

#include "attr-reader.h"
#include "batch-layout.h"
#include "decode.h"

namespace nw {
namespace {

struct TupleOut {
  uint32_t src_off, dst_off, sport_off, dport_off;
};

// CTA_TUPLE_IP: addresses stay in network order, copied as raw bytes.
bool DecodeTupleIp(AttrReader a, uint8_t* rec, const TupleOut& o, DecodeCounters& c) {
  while (a.Next()) {
    switch (a.Type()) {
      case CTA_IP_V4_SRC: a.Bytes(rec + o.src_off, 4); break;
      case CTA_IP_V4_DST: a.Bytes(rec + o.dst_off, 4); break;
      case CTA_IP_V6_SRC: a.Bytes(rec + o.src_off, 16); break;
      case CTA_IP_V6_DST: a.Bytes(rec + o.dst_off, 16); break;
      default: c.unknown++;
    }
  }
  return !a.Failed();
}

// CTA_TUPLE_PROTO: ports, or the ICMP id in both port fields.
bool DecodeTupleProto(AttrReader a, uint8_t* rec, const TupleOut& o, DecodeCounters& c) {
  while (a.Next()) {
    switch (a.Type()) {
      case CTA_PROTO_NUM: Put<uint8_t>(rec, kCtProto, a.U8()); break;
      case CTA_PROTO_SRC_PORT: Put<uint16_t>(rec, o.sport_off, a.Be16()); break;
      case CTA_PROTO_DST_PORT: Put<uint16_t>(rec, o.dport_off, a.Be16()); break;
      case CTA_PROTO_ICMP_ID:
      case CTA_PROTO_ICMPV6_ID: {
        uint16_t id = a.Be16();
        Put<uint16_t>(rec, o.sport_off, id);
        Put<uint16_t>(rec, o.dport_off, id);
        break;
      }
      case CTA_PROTO_ICMP_TYPE:
      case CTA_PROTO_ICMP_CODE:
      case CTA_PROTO_ICMPV6_TYPE:
      case CTA_PROTO_ICMPV6_CODE: a.U8(); break;
      default: c.unknown++;
    }
  }
  return !a.Failed();
}

// The kernel's IPv4 tuple with ports, header by header: {TUPLE_IP {V4_SRC, V4_DST},
// TUPLE_PROTO {PROTO_NUM, SRC_PORT, DST_PORT}} in 48 bytes. Nearly every event is TCP or UDP
// over IPv4, and matching the seven headers costs a third of walking the eight attributes.
// A match decodes exactly what the walk would; anything else (IPv6, ICMP, a zone, another
// kernel's layout) is walked.
struct HeaderAt {
  uint16_t off, len, type;
};
constexpr HeaderAt kTuple4[] = {
    {0, 20, CTA_TUPLE_IP},       {4, 8, CTA_IP_V4_SRC},        {12, 8, CTA_IP_V4_DST},
    {20, 28, CTA_TUPLE_PROTO},   {24, 5, CTA_PROTO_NUM},       {32, 6, CTA_PROTO_SRC_PORT},
    {40, 6, CTA_PROTO_DST_PORT},
};
constexpr size_t kTuple4Len = 48;

uint16_t Be16At(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

bool DecodeTuple4(const uint8_t* p, size_t len, uint8_t* rec, const TupleOut& o) {
  if (len != kTuple4Len) return false;
  for (const HeaderAt& h : kTuple4) {
    uint16_t nla_len, nla_type;
    std::memcpy(&nla_len, p + h.off, 2);
    std::memcpy(&nla_type, p + h.off + 2, 2);
    if (nla_len != h.len || (nla_type & NLA_TYPE_MASK) != h.type) return false;
  }
  std::memcpy(rec + o.src_off, p + 8, 4);
  std::memcpy(rec + o.dst_off, p + 16, 4);
  Put<uint8_t>(rec, kCtProto, p[28]);
  Put<uint16_t>(rec, o.sport_off, Be16At(p + 36));
  Put<uint16_t>(rec, o.dport_off, Be16At(p + 44));
  return true;
}

// tuple: the reader positioned on CTA_TUPLE_ORIG or CTA_TUPLE_REPLY.
bool DecodeTuple(const AttrReader& tuple, bool fixed, uint8_t* rec, const TupleOut& o, DecodeCounters& c) {
  if (fixed && DecodeTuple4(tuple.Data(), tuple.Len(), rec, o)) return true;
  AttrReader a = tuple.Nested();
  while (a.Next()) {
    switch (a.Type()) {
      case CTA_TUPLE_IP:
        if (!DecodeTupleIp(a.Nested(), rec, o, c)) return a.Fail();
        break;
      case CTA_TUPLE_PROTO:
        if (!DecodeTupleProto(a.Nested(), rec, o, c)) return a.Fail();
        break;
      case CTA_TUPLE_ZONE: a.Be16(); break;
      default: c.unknown++;
    }
  }
  return !a.Failed();
}

bool DecodeProtoinfo(AttrReader a, uint8_t* rec, DecodeCounters& c) {
  while (a.Next()) {
    if (a.Type() != CTA_PROTOINFO_TCP) {
      // DCCP/SCTP state is known and not used downstream; only a newer kernel's is unknown.
      if (a.Type() != CTA_PROTOINFO_DCCP && a.Type() != CTA_PROTOINFO_SCTP) c.unknown++;
      continue;
    }
    AttrReader t = a.Nested();
    while (t.Next()) {
      if (t.Type() == CTA_PROTOINFO_TCP_STATE) {
        Put<int8_t>(rec, kCtTcpState, static_cast<int8_t>(t.U8()));
      }
      // wscale/flags are known and not needed
    }
    if (t.Failed()) return a.Fail();
  }
  return !a.Failed();
}

const TupleOut kOrig{kCtOrigSrc, kCtOrigDst, kCtOrigSport, kCtOrigDport};
const TupleOut kReply{kCtReplySrc, kCtReplyDst, kCtReplySport, kCtReplyDport};

}  // namespace

bool DecodeConntrack(const nlmsghdr* nlh, bool dump, double ts_ms, uint8_t* rec, DecodeCounters& c,
                     bool fixed_tuples) {
  if (nlh->nlmsg_len < kNfMsgHdrLen) {
    c.errors++;
    return false;
  }
  const uint8_t msg = nlh->nlmsg_type & 0xff;
  const nfgenmsg* g = reinterpret_cast<const nfgenmsg*>(reinterpret_cast<const uint8_t*>(nlh) +
                                                        NLMSG_HDRLEN);
  uint8_t family = FamilyOf(g->nfgen_family);
  if (family == 0) {
    c.errors++;
    return false;
  }
  uint8_t kind;
  if (dump) {
    kind = 4;
  } else if (msg == IPCTNL_MSG_CT_DELETE) {
    kind = 3;
  } else if (msg == IPCTNL_MSG_CT_NEW) {
    // NEW and UPDATE share the message type; the kernel marks a new entry CREATE|EXCL.
    kind = (nlh->nlmsg_flags & (NLM_F_CREATE | NLM_F_EXCL)) ? 1 : 2;
  } else {
    c.errors++;
    return false;
  }
  ZeroRecord<kCtRecordSize>(rec);
  Put<double>(rec, kCtTs, ts_ms);
  Put<uint8_t>(rec, kCtKind, kind);
  Put<uint8_t>(rec, kCtFamily, family);
  Put<int8_t>(rec, kCtTcpState, -1);

  AttrReader a(reinterpret_cast<const uint8_t*>(nlh) + kNfMsgHdrLen, nlh->nlmsg_len - kNfMsgHdrLen);
  bool have_orig = false;
  while (a.Next()) {
    switch (a.Type()) {
      case CTA_TUPLE_ORIG:
        if (!DecodeTuple(a, fixed_tuples, rec, kOrig, c)) a.Fail();
        have_orig = true;
        break;
      case CTA_TUPLE_REPLY:
        if (!DecodeTuple(a, fixed_tuples, rec, kReply, c)) a.Fail();
        break;
      case CTA_STATUS: Put<uint32_t>(rec, kCtStatus, a.Be32()); break;
      case CTA_PROTOINFO:
        if (!DecodeProtoinfo(a.Nested(), rec, c)) a.Fail();
        break;
      case CTA_TIMEOUT: Put<uint32_t>(rec, kCtTimeout, a.Be32()); break;
      case CTA_MARK: Put<uint32_t>(rec, kCtMark, a.Be32()); break;
      case CTA_ID: Put<uint32_t>(rec, kCtId, a.Be32()); break;
      case CTA_ZONE: Put<uint16_t>(rec, kCtZone, a.Be16()); break;
      case CTA_USE:
      case CTA_SECMARK:
      case CTA_COUNTERS_ORIG:
      case CTA_COUNTERS_REPLY:
      case CTA_TIMESTAMP:
      case CTA_HELP:
      case CTA_SEQ_ADJ_ORIG:
      case CTA_SEQ_ADJ_REPLY:
      case CTA_LABELS:
      case CTA_SYNPROXY:
      case CTA_STATUS_MASK:
        break;  // known, not needed downstream
      default: c.unknown++;
    }
  }
  if (a.Failed() || !have_orig) {
    c.errors++;
    return false;
  }
  return true;
}

namespace {
// CTA_STATS_* → offset in the stats record; 0xffff = not summed.
uint32_t StatsOffset(uint16_t type) {
  switch (type) {
    case CTA_STATS_FOUND: return kStFound;
    case CTA_STATS_INVALID: return kStInvalid;
    case CTA_STATS_INSERT: return kStInsert;
    case CTA_STATS_INSERT_FAILED: return kStInsertFailed;
    case CTA_STATS_DROP: return kStDrop;
    case CTA_STATS_EARLY_DROP: return kStEarlyDrop;
    case CTA_STATS_ERROR: return kStError;
    case CTA_STATS_SEARCH_RESTART: return kStSearchRestart;
    case CTA_STATS_CLASH_RESOLVE: return kStClashResolve;
    case CTA_STATS_CHAIN_TOOLONG: return kStChainTooLong;
    default: return 0xffff;
  }
}

void AddF64(uint8_t* rec, uint32_t off, double v) {
  double cur;
  std::memcpy(&cur, rec + off, 8);
  cur += v;
  std::memcpy(rec + off, &cur, 8);
}
}  // namespace

bool AddStatsCpu(const nlmsghdr* nlh, uint8_t* rec, DecodeCounters& c) {
  if (nlh->nlmsg_len < kNfMsgHdrLen) {
    c.errors++;
    return false;
  }
  AttrReader a(reinterpret_cast<const uint8_t*>(nlh) + kNfMsgHdrLen, nlh->nlmsg_len - kNfMsgHdrLen);
  // Decode into a scratch copy so a malformed CPU adds nothing.
  uint8_t tmp[kStRecordSize];
  std::memcpy(tmp, rec, kStRecordSize);
  while (a.Next()) {
    uint32_t off = StatsOffset(a.Type());
    if (off == 0xffff) {
      // searched/new/ignore/delete are "no longer used" but still 4-byte values
      if (a.Type() > CTA_STATS_MAX) c.unknown++;
      continue;
    }
    AddF64(tmp, off, a.Be32());
  }
  if (a.Failed()) {
    c.errors++;
    return false;
  }
  AddF64(tmp, kStCpus, 1);
  std::memcpy(rec, tmp, kStRecordSize);
  return true;
}

bool SetStatsGlobal(const nlmsghdr* nlh, uint8_t* rec, DecodeCounters& c) {
  if (nlh->nlmsg_len < kNfMsgHdrLen) {
    c.errors++;
    return false;
  }
  AttrReader a(reinterpret_cast<const uint8_t*>(nlh) + kNfMsgHdrLen, nlh->nlmsg_len - kNfMsgHdrLen);
  while (a.Next()) {
    if (a.Type() == CTA_STATS_GLOBAL_ENTRIES) {
      double v = a.Be32();
      std::memcpy(rec + kStCount, &v, 8);
    } else if (a.Type() != CTA_STATS_GLOBAL_MAX_ENTRIES) {
      c.unknown++;
    }
  }
  if (a.Failed()) {
    c.errors++;
    return false;
  }
  return true;
}

}  // namespace nw
