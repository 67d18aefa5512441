// nf_tables dump replies → fact items. A rule is a list of expressions that work on registers:
// `immediate` loads constants (NAT addresses and ports, verdicts), `meta`/`payload`/`ct` load
// packet facts, `cmp` compares a register with a constant, `lookup` matches a set or loads a
// map's data, and `nat`/`masq`/`redir` read their addresses and ports from registers. So the
// decoder keeps, per 4-byte register slot, where its value came from and, for constants, the
// bytes, and resolves each NAT statement's operands through them.
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nf_tables_compat.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>

#include <cstring>

#include "attr-reader.h"
#include "facts-writer.h"
#include "nlmsg-walk.h"

namespace nw {
namespace {

constexpr size_t kNfHdr = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(nfgenmsg));
constexpr int kSlots = 16;  // 64 bytes of registers in 4-byte slots (NFT_REG32_00..15)
constexpr size_t kNameMax = 256;

struct Slot {
  uint8_t src = kSrcNone;
  uint32_t key = 0;    // meta / ct key, or payload base << 16 | offset
  uint8_t len = 0;     // bytes loaded at this slot (first slot of a load)
  int8_t map = -1;     // index into Rule::maps when src == kSrcMap
  uint8_t map_off = 0; // byte offset of this slot in the map's data
};

struct MapRef {
  std::string set;
};

struct RuleCtx {
  uint8_t family = 0;
  std::string table;
  Slot slot[kSlots];
  uint8_t data[kSlots * 4] = {};
  MapRef maps[4];
  int nmaps = 0;
};

/** NFT_REG_1..4 (16 bytes each) and NFT_REG32_00..15 → first 4-byte slot; -1 if invalid. */
int SlotOf(uint32_t reg) {
  if (reg >= NFT_REG_1 && reg <= NFT_REG_4) return int(reg - NFT_REG_1) * 4;
  if (reg >= NFT_REG32_00 && reg <= NFT_REG32_15) return int(reg - NFT_REG32_00);
  return -1;
}

/** Marks the slots a load of len bytes at reg covers as coming from src. */
void Load(RuleCtx& r, uint32_t reg, uint32_t len, uint8_t src, uint32_t key, const uint8_t* bytes) {
  int s = SlotOf(reg);
  if (s < 0) return;
  if (len == 0) len = 4;
  uint32_t n = (len + 3) / 4;
  if (uint32_t(s) + n > kSlots) n = kSlots - uint32_t(s);
  for (uint32_t i = 0; i < n; i++) {
    Slot& x = r.slot[s + i];
    x = Slot{};
    x.src = src;
    x.key = key;
    x.len = i == 0 ? uint8_t(len > 255 ? 255 : len) : 0;
  }
  if (bytes) {
    size_t room = size_t(kSlots - s) * 4;
    std::memcpy(r.data + s * 4, bytes, len < room ? len : room);
  }
}

std::string StrOf(AttrReader& a) {
  const char* p = reinterpret_cast<const char*>(a.Data());
  return std::string(p, strnlen(p, a.Len() < kNameMax ? a.Len() : kNameMax));
}

/** NFTA_DATA_VALUE inside a nested NFTA_*_DATA: pointer and length (0 if absent). */
const uint8_t* DataValue(AttrReader& a, size_t* len) {
  AttrReader d = a.Nested();
  while (d.Next()) {
    if (d.Type() == NFTA_DATA_VALUE) {
      *len = d.Len();
      return d.Data();
    }
  }
  if (d.Failed()) a.Fail();
  *len = 0;
  return nullptr;
}

bool Immediate(AttrReader e, RuleCtx& r, FactsWriter& w) {
  uint32_t dreg = 0;
  bool have_dreg = false;
  const uint8_t* val = nullptr;
  size_t vlen = 0;
  int32_t verdict = 0;
  bool is_verdict = false;
  std::string chain;
  while (e.Next()) {
    if (e.Type() == NFTA_IMMEDIATE_DREG) {
      dreg = e.Be32();
      have_dreg = true;
    } else if (e.Type() == NFTA_IMMEDIATE_DATA) {
      AttrReader d = e.Nested();
      while (d.Next()) {
        if (d.Type() == NFTA_DATA_VALUE) {
          val = d.Data();
          vlen = d.Len();
        } else if (d.Type() == NFTA_DATA_VERDICT) {
          AttrReader v = d.Nested();
          while (v.Next()) {
            if (v.Type() == NFTA_VERDICT_CODE) {
              verdict = int32_t(v.Be32());
              is_verdict = true;
            } else if (v.Type() == NFTA_VERDICT_CHAIN) {
              chain = StrOf(v);
            }
          }
          if (v.Failed()) return false;
        }
      }
      if (d.Failed()) return false;
    }
  }
  if (e.Failed() || !have_dreg) return false;
  if (dreg == NFT_REG_VERDICT) {
    if (!is_verdict) return false;
    w.Begin(kItemVerdict);
    w.I32(verdict);
    w.Str(chain.c_str(), kNameMax);
    w.End();
    return true;
  }
  if (!val) return false;
  Load(r, dreg, uint32_t(vlen), kSrcImm, 0, val);
  return true;
}

/** meta / ct / payload / bitwise / other loads: only where the value came from. */
void LoadFrom(AttrReader e, RuleCtx& r, uint16_t dreg_attr, uint16_t key_attr, uint8_t src) {
  uint32_t dreg = 0, key = 0, len = 4, base = 0, off = 0;
  bool have = false;
  while (e.Next()) {
    uint16_t t = e.Type();
    if (t == dreg_attr) {
      dreg = e.Be32();
      have = true;
    } else if (key_attr && t == key_attr) {
      key = e.Be32();
    } else if (src == kSrcPayload && t == NFTA_PAYLOAD_BASE) {
      base = e.Be32();
    } else if (src == kSrcPayload && t == NFTA_PAYLOAD_OFFSET) {
      off = e.Be32();
    } else if (src == kSrcPayload && t == NFTA_PAYLOAD_LEN) {
      len = e.Be32();
    }
  }
  if (e.Failed() || !have) return;
  if (src == kSrcPayload) key = (base << 16) | (off & 0xffff);
  Load(r, dreg, src == kSrcPayload ? len : 4, src, key, nullptr);
}

void Cmp(AttrReader e, RuleCtx& r, FactsWriter& w) {
  uint32_t sreg = 0, op = 0;
  const uint8_t* val = nullptr;
  size_t vlen = 0;
  while (e.Next()) {
    if (e.Type() == NFTA_CMP_SREG) sreg = e.Be32();
    else if (e.Type() == NFTA_CMP_OP) op = e.Be32();
    else if (e.Type() == NFTA_CMP_DATA) val = DataValue(e, &vlen);
  }
  int s = SlotOf(sreg);
  if (e.Failed() || s < 0 || !val || (op != NFT_CMP_EQ && op != NFT_CMP_NEQ)) return;
  const Slot& x = r.slot[s];
  const uint8_t neq = op == NFT_CMP_NEQ;
  if (x.src == kSrcMeta && x.key == NFT_META_OIFNAME) {
    // `oifname "eth*"` compares only the prefix: no terminating NUL in the data.
    size_t n = strnlen(reinterpret_cast<const char*>(val), vlen);
    w.Begin(kItemOif);
    w.U8(neq);
    w.U8(0);
    w.U8(n == vlen ? 1 : 0);
    w.U8(0);
    w.Str(reinterpret_cast<const char*>(val), n);
    w.End();
  } else if (x.src == kSrcMeta && x.key == NFT_META_OIF && vlen == 4) {
    uint32_t idx;
    std::memcpy(&idx, val, 4);
    w.Begin(kItemOif);
    w.U8(neq);
    w.U8(1);
    w.U16(0);
    w.U32(idx);
    w.End();
  } else if (vlen == 1 && ((x.src == kSrcMeta && x.key == NFT_META_L4PROTO) ||
                           (x.src == kSrcPayload && x.key == ((NFT_PAYLOAD_NETWORK_HEADER << 16) | 9) &&
                            r.family != NFPROTO_IPV6) ||
                           (x.src == kSrcPayload && x.key == ((NFT_PAYLOAD_NETWORK_HEADER << 16) | 6) &&
                            r.family == NFPROTO_IPV6))) {
    w.Begin(kItemProto);
    w.U8(neq);
    w.U8(val[0]);
    w.U16(0);
    w.End();
  }
}

void Lookup(AttrReader e, RuleCtx& r, FactsWriter& w) {
  std::string set;
  uint32_t sreg = 0, dreg = 0;
  bool have_dreg = false;
  while (e.Next()) {
    if (e.Type() == NFTA_LOOKUP_SET) set = StrOf(e);
    else if (e.Type() == NFTA_LOOKUP_SREG) sreg = e.Be32();
    else if (e.Type() == NFTA_LOOKUP_DREG) {
      dreg = e.Be32();
      have_dreg = true;
    }
  }
  if (e.Failed() || set.empty()) return;
  int s = SlotOf(sreg);
  const Slot key = s >= 0 ? r.slot[s] : Slot{};
  w.Begin(kItemLookup);
  w.U8(r.family);
  w.U8(have_dreg ? 1 : 0);
  w.U8(key.src);
  w.U8(uint8_t(key.key));
  w.StrZ(r.table.c_str(), kNameMax);
  w.StrZ(set.c_str(), kNameMax);
  w.End();
  if (!have_dreg) return;
  int d = SlotOf(dreg);
  if (d < 0) return;
  int m = -1;
  for (int i = 0; i < r.nmaps; i++)
    if (r.maps[i].set == set) m = i;
  if (m < 0 && r.nmaps < 4) {
    m = r.nmaps++;
    r.maps[m].set = set;
  }
  // The map's data fills the registers from dreg on; how far is unknown here, so every slot
  // up to the end is marked (a later load overwrites what it covers).
  for (int i = d; i < kSlots; i++) {
    r.slot[i] = Slot{};
    r.slot[i].src = m < 0 ? kSrcOther : kSrcMap;
    r.slot[i].map = int8_t(m);
    r.slot[i].map_off = uint8_t((i - d) * 4);
  }
}

/** Resolves one NAT operand register into it (state, map offset, value bytes). */
void Operand(const RuleCtx& r, uint32_t reg, NatItem& n, int i, uint8_t* out, size_t len, int* map) {
  int s = SlotOf(reg);
  if (s < 0) return;
  const Slot& x = r.slot[s];
  if (x.src == kSrcImm) {
    n.state[i] = kSrcImm;
    size_t room = size_t(kSlots - s) * 4;
    std::memcpy(out, r.data + s * 4, len < room ? len : room);
  } else if (x.src == kSrcMap) {
    n.state[i] = kSrcMap;
    n.map_off[i] = x.map_off;
    *map = x.map;
  } else {
    n.state[i] = x.src == kSrcNone ? uint8_t(kSrcOther) : x.src;
  }
}

void Nat(AttrReader e, const RuleCtx& r, FactsWriter& w, uint8_t type) {
  NatItem n{};
  n.type = type;
  n.nfproto = r.family == NFPROTO_INET ? uint8_t(0) : r.family;
  uint32_t reg[4] = {0, 0, 0, 0};
  bool have[4] = {false, false, false, false};
  while (e.Next()) {
    uint16_t t = e.Type();
    int slot = -1;
    if (type == kNatSnat) {  // nat expression (snat or dnat)
      if (t == NFTA_NAT_TYPE) n.type = e.Be32() == NFT_NAT_DNAT ? kNatDnat : kNatSnat;
      else if (t == NFTA_NAT_FAMILY) n.nfproto = uint8_t(e.Be32());
      else if (t == NFTA_NAT_FLAGS) n.flags = e.Be32();
      else if (t == NFTA_NAT_REG_ADDR_MIN) slot = 0;
      else if (t == NFTA_NAT_REG_ADDR_MAX) slot = 1;
      else if (t == NFTA_NAT_REG_PROTO_MIN) slot = 2;
      else if (t == NFTA_NAT_REG_PROTO_MAX) slot = 3;
    } else if (type == kNatMasq) {
      if (t == NFTA_MASQ_FLAGS) n.flags = e.Be32();
      else if (t == NFTA_MASQ_REG_PROTO_MIN) slot = 2;
      else if (t == NFTA_MASQ_REG_PROTO_MAX) slot = 3;
    } else {  // redir
      if (t == NFTA_REDIR_FLAGS) n.flags = e.Be32();
      else if (t == NFTA_REDIR_REG_PROTO_MIN) slot = 2;
      else if (t == NFTA_REDIR_REG_PROTO_MAX) slot = 3;
    }
    if (slot >= 0) {
      reg[slot] = e.Be32();
      have[slot] = true;
    }
  }
  if (e.Failed()) return;
  const size_t alen = n.nfproto == NFPROTO_IPV6 ? 16 : 4;
  int map = -1;
  uint8_t p[2][2] = {};
  if (have[0]) Operand(r, reg[0], n, 0, n.addr_min, alen, &map);
  if (have[1]) Operand(r, reg[1], n, 1, n.addr_max, alen, &map);
  if (have[2]) Operand(r, reg[2], n, 2, p[0], 2, &map);
  if (have[3]) Operand(r, reg[3], n, 3, p[1], 2, &map);
  // Registers hold ports in network order.
  n.port_min = uint16_t((p[0][0] << 8) | p[0][1]);
  n.port_max = uint16_t((p[1][0] << 8) | p[1][1]);
  w.Begin(kItemNat);
  w.Raw(&n, sizeof(n));
  if (map >= 0 && map < r.nmaps) {
    w.StrZ(r.table.c_str(), kNameMax);
    w.StrZ(r.maps[map].set.c_str(), kNameMax);
  }
  w.End();
}

void Log(AttrReader e, FactsWriter& w) {
  bool has_group = false;
  uint16_t group = 0;
  const uint8_t* prefix = nullptr;
  size_t plen = 0;
  while (e.Next()) {
    if (e.Type() == NFTA_LOG_GROUP) {
      group = e.Be16();
      has_group = true;
    } else if (e.Type() == NFTA_LOG_PREFIX) {
      prefix = e.Data();
      plen = e.Len();
    }
  }
  if (e.Failed()) return;
  w.Begin(kItemLog);
  w.U8(has_group);
  w.U8(0);
  w.U16(group);
  if (prefix) w.Str(reinterpret_cast<const char*>(prefix), plen < 128 ? plen : 128);
  w.End();
}

/** Compat (iptables-nft) match or target: name, revision and the x_tables payload. */
void Compat(AttrReader e, const RuleCtx& r, FactsWriter& w, bool target, uint32_t* errors) {
  std::string name;
  uint8_t rev = 0;
  const uint8_t* info = nullptr;
  size_t ilen = 0;
  while (e.Next()) {
    // NFTA_MATCH_* and NFTA_TARGET_* share their numbers.
    if (e.Type() == NFTA_TARGET_NAME) name = StrOf(e);
    else if (e.Type() == NFTA_TARGET_REV) rev = uint8_t(e.Be32());
    else if (e.Type() == NFTA_TARGET_INFO) {
      info = e.Data();
      ilen = e.Len();
    }
  }
  if (e.Failed() || name.empty()) return;
  w.Begin(target ? kItemXtTarget : kItemXtMatch);
  w.U8(rev);
  w.Zero(3);
  w.Str(name.c_str(), kNameMax);
  w.End();
  if (target && info && !DecodeXtTarget(name.c_str(), rev, r.family, info, ilen, w)) ++*errors;
}

void CtUse(AttrReader e, FactsWriter& w, RuleCtx& r) {
  uint32_t key = 0;
  uint32_t dreg = 0;
  bool have_dreg = false;
  while (e.Next()) {
    if (e.Type() == NFTA_CT_KEY) key = e.Be32();
    else if (e.Type() == NFTA_CT_DREG) {
      dreg = e.Be32();
      have_dreg = true;
    }
  }
  if (e.Failed()) return;
  if (have_dreg) Load(r, dreg, 4, kSrcCt, key, nullptr);
  w.Begin(kItemCt);
  w.U8(uint8_t(key));
  w.Zero(3);
  w.End();
}

void Expression(AttrReader el, RuleCtx& r, FactsWriter& w, uint32_t* errors) {
  std::string name;
  AttrReader data(nullptr, 0);
  bool have_data = false;
  while (el.Next()) {
    if (el.Type() == NFTA_EXPR_NAME) name = StrOf(el);
    else if (el.Type() == NFTA_EXPR_DATA) {
      data = el.Nested();
      have_data = true;
    }
  }
  if (el.Failed()) {
    ++*errors;
    return;
  }
  if (name == "reject") {
    w.Begin(kItemVerdict);
    w.I32(kVerdictReject);
    w.End();
    return;
  }
  if (name == "masq" || name == "redir") {
    Nat(data, r, w, name == "masq" ? kNatMasq : kNatRedir);  // attributes may be absent
    return;
  }
  if (!have_data) return;
  if (name == "immediate") {
    if (!Immediate(data, r, w)) ++*errors;
  } else if (name == "cmp") {
    Cmp(data, r, w);
  } else if (name == "meta") {
    LoadFrom(data, r, NFTA_META_DREG, NFTA_META_KEY, kSrcMeta);
  } else if (name == "payload") {
    LoadFrom(data, r, NFTA_PAYLOAD_DREG, 0, kSrcPayload);
  } else if (name == "ct") {
    CtUse(data, w, r);
  } else if (name == "bitwise") {
    LoadFrom(data, r, NFTA_BITWISE_DREG, 0, kSrcOther);
  } else if (name == "lookup") {
    Lookup(data, r, w);
  } else if (name == "nat") {
    Nat(data, r, w, kNatSnat);
  } else if (name == "log") {
    Log(data, w);
  } else if (name == "target" || name == "match") {
    Compat(data, r, w, name == "target", errors);
  } else if (name == "connlimit" || name == "flow_offload") {
    w.Begin(kItemCt);
    w.U8(0xff);
    w.Zero(3);
    w.End();
  }
}

bool Rule(AttrReader a, uint8_t family, FactsWriter& w, uint32_t* errors) {
  RuleCtx r;
  r.family = family;
  std::string chain;
  uint64_t handle = 0;
  AttrReader exprs(nullptr, 0);
  bool have_exprs = false;
  while (a.Next()) {
    if (a.Type() == NFTA_RULE_TABLE) r.table = StrOf(a);
    else if (a.Type() == NFTA_RULE_CHAIN) chain = StrOf(a);
    else if (a.Type() == NFTA_RULE_HANDLE) handle = a.Be64();
    else if (a.Type() == NFTA_RULE_EXPRESSIONS) {
      exprs = a.Nested();
      have_exprs = true;
    }
  }
  if (a.Failed()) return false;
  w.Begin(kItemRule);
  w.U8(family);
  w.U8(kOriginNft);
  w.Zero(6);
  w.U64(handle);
  w.StrZ(r.table.c_str(), kNameMax);
  w.StrZ(chain.c_str(), kNameMax);
  w.End();
  if (!have_exprs) return true;
  while (exprs.Next()) {
    if (exprs.Type() == NFTA_LIST_ELEM) Expression(exprs.Nested(), r, w, errors);
  }
  return !exprs.Failed();
}

bool Chain(AttrReader a, uint8_t family, FactsWriter& w) {
  std::string table, name, type;
  bool has_hook = false;
  uint32_t hook = 0;
  int32_t prio = 0;
  while (a.Next()) {
    if (a.Type() == NFTA_CHAIN_TABLE) table = StrOf(a);
    else if (a.Type() == NFTA_CHAIN_NAME) name = StrOf(a);
    else if (a.Type() == NFTA_CHAIN_TYPE) type = StrOf(a);
    else if (a.Type() == NFTA_CHAIN_HOOK) {
      AttrReader h = a.Nested();
      while (h.Next()) {
        if (h.Type() == NFTA_HOOK_HOOKNUM) {
          hook = h.Be32();
          has_hook = true;
        } else if (h.Type() == NFTA_HOOK_PRIORITY) {
          prio = int32_t(h.Be32());
        }
      }
      if (h.Failed()) return false;
    }
  }
  if (a.Failed()) return false;
  w.Begin(kItemChain);
  w.U8(family);
  w.U8(kOriginNft);
  w.U8(has_hook);
  w.U8(0);
  w.U32(hook);
  w.I32(prio);
  w.StrZ(table.c_str(), kNameMax);
  w.StrZ(name.c_str(), kNameMax);
  w.StrZ(type.c_str(), kNameMax);
  w.End();
  return true;
}

bool Table(AttrReader a, uint8_t family, FactsWriter& w) {
  std::string name;
  while (a.Next()) {
    if (a.Type() == NFTA_TABLE_NAME) name = StrOf(a);
  }
  if (a.Failed()) return false;
  w.Begin(kItemTable);
  w.U8(family);
  w.U8(kOriginNft);
  w.Zero(2);
  w.Str(name.c_str(), kNameMax);
  w.End();
  return true;
}

/** NEWSETELEM: one item per element with its key, interval end and (map) data. */
bool SetElems(AttrReader a, uint8_t family, FactsWriter& w) {
  std::string table, set;
  AttrReader list(nullptr, 0);
  bool have_list = false;
  while (a.Next()) {
    if (a.Type() == NFTA_SET_ELEM_LIST_TABLE) table = StrOf(a);
    else if (a.Type() == NFTA_SET_ELEM_LIST_SET) set = StrOf(a);
    else if (a.Type() == NFTA_SET_ELEM_LIST_ELEMENTS) {
      list = a.Nested();
      have_list = true;
    }
  }
  if (a.Failed()) return false;
  if (!have_list) return true;
  while (list.Next()) {
    if (list.Type() != NFTA_LIST_ELEM) continue;
    AttrReader el = list.Nested();
    const uint8_t *key = nullptr, *key_end = nullptr, *data = nullptr;
    size_t klen = 0, kelen = 0, dlen = 0;
    uint32_t flags = 0;
    while (el.Next()) {
      if (el.Type() == NFTA_SET_ELEM_KEY) key = DataValue(el, &klen);
      else if (el.Type() == NFTA_SET_ELEM_KEY_END) key_end = DataValue(el, &kelen);
      else if (el.Type() == NFTA_SET_ELEM_DATA) data = DataValue(el, &dlen);
      else if (el.Type() == NFTA_SET_ELEM_FLAGS) flags = el.Be32();
    }
    if (el.Failed()) return false;
    if (klen > 64 || kelen > 64 || dlen > 64) return false;
    w.Begin(kItemSetElem);
    w.U8(family);
    w.U8((flags & NFT_SET_ELEM_INTERVAL_END) ? 1 : 0);
    w.Zero(2);
    w.U16(uint16_t(klen));
    w.U16(uint16_t(kelen));
    w.U16(uint16_t(dlen));
    w.Zero(2);
    w.StrZ(table.c_str(), kNameMax);
    w.StrZ(set.c_str(), kNameMax);
    if (key) w.Raw(key, klen);
    if (key_end) w.Raw(key_end, kelen);
    if (data) w.Raw(data, dlen);
    w.End();
  }
  return !list.Failed();
}

}  // namespace

uint32_t DecodeNftMessages(const uint8_t* data, size_t len, FactsWriter& out) {
  uint32_t errors = 0;
  const bool whole = ForEachNlmsg(data, len, [&](const nlmsghdr& h, const uint8_t* msg) {
    const size_t mlen = h.nlmsg_len;
    if ((h.nlmsg_type >> 8) != NFNL_SUBSYS_NFTABLES) return;
    if (mlen < kNfHdr) {
      errors++;
      return;
    }
    const uint8_t family = reinterpret_cast<const nfgenmsg*>(msg + NLMSG_HDRLEN)->nfgen_family;
    AttrReader a(msg + kNfHdr, mlen - kNfHdr);
    bool ok = true;
    switch (h.nlmsg_type & 0xff) {
      case NFT_MSG_NEWTABLE: ok = Table(a, family, out); break;
      case NFT_MSG_NEWCHAIN: ok = Chain(a, family, out); break;
      case NFT_MSG_NEWRULE: ok = Rule(a, family, out, &errors); break;
      case NFT_MSG_NEWSETELEM: ok = SetElems(a, family, out); break;
      default: break;
    }
    if (!ok) errors++;
  });
  return errors + (whole ? 0 : 1);
}

}  // namespace nw
