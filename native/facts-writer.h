// Kernel facts (ruleset, addresses, sockets, sysctls) as a flat list of items that
// src/source/facts-codec.ts reads with a DataView: no JS objects are built here.
//
// Item: u16 type, u16 payload length, payload, zero padding to 4 bytes. Host byte order
// (little-endian on every target natwatch ships for); addresses and ports inside payloads are
// converted to the layout the item type names below. Items that belong to a rule follow its
// kItemRule item until the next rule, chain or table. docs/kernel-facts.md describes each one.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace nw {

enum FactItem : uint16_t {
  kItemTable = 1,      // u8 family, u8 origin, 2 pad, name
  kItemChain = 2,      // u8 family, u8 origin, u8 has_hook, pad, u32 hook, i32 prio, table\0 chain\0 type\0
  kItemRule = 3,       // u8 family, u8 origin, 2 pad, u32 pad, u64 handle, table\0 chain\0
  kItemOif = 4,        // u8 op (0 ==, 1 !=), u8 kind (0 name, 1 ifindex), u8 prefix-match, pad, name | u32 index
  kItemProto = 5,      // u8 op, u8 proto, 2 pad
  kItemNat = 6,        // see NatItem
  kItemLog = 7,        // u8 has_group, pad, u16 group, prefix
  kItemVerdict = 8,    // i32 code (NF_DROP 0, NF_ACCEPT 1, NFT_* < 0, kVerdictReject), chain name
  kItemCt = 9,         // u8 ct key: the rule uses conntrack state
  kItemXtMatch = 10,   // u8 rev, 3 pad, name
  kItemXtTarget = 11,  // u8 rev, 3 pad, name
  kItemLookup = 12,    // u8 family, u8 is_map, u8 src (RegSrc of the key), u8 src_key, table\0 set\0
  kItemSetElem = 13,   // u8 family, 3 pad, u16 key_len, u16 key_end_len, u16 data_len, 2 pad, table\0 set\0, key, key_end, data
  kItemLink = 20,      // u32 ifindex, name
  kItemAddr = 21,      // u32 ifindex, u8 family (4|6), u8 prefixlen, u8 scope, pad, addr[16]
  kItemSock = 30,      // u8 family (4|6), u8 proto, u8 tcp state, pad, u16 sport, u16 dport, src[16], dst[16]
  kItemSockCount = 31, // u8 family (4|6), u8 proto, u16 dport, u32 sockets, src[16], dst[16]
  kItemSysctl = 40,    // name\0 value
  kItemError = 50,     // u8 section, 3 pad, i32 errno, what
  kItemDecodeErrors = 51,  // u8 section, 3 pad, u32 malformed messages or attributes
};

/** Sections, for kItemError / kItemDecodeErrors. */
enum FactSection : uint8_t {
  kSecNft = 1,
  kSecIptLegacy = 2,
  kSecIp6tLegacy = 3,
  kSecRtnl = 4,
  kSecDiag = 5,
  kSecSysctl = 6,
};

enum FactOrigin : uint8_t { kOriginNft = 0, kOriginLegacy = 1 };

/** A reject statement / REJECT target, next to the netfilter verdict codes. */
constexpr int32_t kVerdictReject = 1000;

/** Where a register's value came from (kItemLookup's key, kItemNat's operands). */
enum RegSrc : uint8_t { kSrcNone = 0, kSrcImm = 1, kSrcMap = 2, kSrcMeta = 3, kSrcPayload = 4, kSrcCt = 5, kSrcOther = 6 };

enum NatType : uint8_t { kNatSnat = 0, kNatDnat = 1, kNatMasq = 2, kNatRedir = 3, kNatNetmap = 4 };

/** kItemNat payload. Operands: state (RegSrc: none, imm = value below, map = byte offset of
 *  the value in the map's data), then the values. Ports in host order. */
struct NatItem {
  uint8_t type;        // NatType
  uint8_t nfproto;     // NFPROTO_IPV4 (2) / NFPROTO_IPV6 (10) / 0 unknown
  uint8_t via_xt;      // 1: decoded from an x_tables target payload
  uint8_t pad0;
  uint32_t flags;      // NF_NAT_RANGE_*
  uint8_t state[4];    // addr min, addr max, proto min, proto max
  uint8_t map_off[4];  // byte offset in the map's data, where state == kSrcMap
  uint16_t port_min;
  uint16_t port_max;
  uint8_t addr_min[16];
  uint8_t addr_max[16];
  // followed by table\0 set\0 when an operand comes from a map
};
static_assert(sizeof(NatItem) == 52, "NatItem is read at fixed offsets by facts-codec.ts");

class FactsWriter {
 public:
  /** Starts an item; fields are appended with the Put* helpers, End() closes it. */
  void Begin(uint16_t type) {
    start_ = buf_.size();
    uint8_t hdr[4] = {};
    std::memcpy(hdr, &type, 2);
    buf_.insert(buf_.end(), hdr, hdr + 4);
  }
  void Raw(const void* p, size_t n) {
    const uint8_t* b = static_cast<const uint8_t*>(p);
    buf_.insert(buf_.end(), b, b + n);
  }
  void U8(uint8_t v) { buf_.push_back(v); }
  void U16(uint16_t v) { Raw(&v, 2); }
  void U32(uint32_t v) { Raw(&v, 4); }
  void I32(int32_t v) { Raw(&v, 4); }
  void U64(uint64_t v) { Raw(&v, 8); }
  void Zero(size_t n) { buf_.insert(buf_.end(), n, 0); }
  /** A string without its terminator, cut at the first NUL or at max bytes. */
  void Str(const char* s, size_t max) {
    size_t n = s ? strnlen(s, max) : 0;
    Raw(s, n);
  }
  /** A string plus a NUL (for items with several strings). */
  void StrZ(const char* s, size_t max) {
    Str(s, max);
    U8(0);
  }
  void End() {
    size_t len = buf_.size() - start_ - 4;
    if (len > 0xffff) {  // never produced by the decoders (names and payloads are bounded)
      buf_.resize(start_);
      return;
    }
    uint16_t l16 = uint16_t(len);
    std::memcpy(buf_.data() + start_ + 2, &l16, 2);
    buf_.insert(buf_.end(), (4 - len % 4) % 4, 0);
  }

  void Error(uint8_t section, int err, const char* what) {
    Begin(kItemError);
    U8(section);
    Zero(3);
    I32(err);
    Str(what, 64);
    End();
  }
  void DecodeErrors(uint8_t section, uint32_t n) {
    if (!n) return;
    Begin(kItemDecodeErrors);
    U8(section);
    Zero(3);
    U32(n);
    End();
  }

  /**
   * Capture mode (kernelFacts({raw: true}), for fixtures and fuzz seeds): the kernel bytes each
   * decoder was given, framed as u8 kind (FactSection; kSecDiag + 16 for UDP), 3 pad, u32
   * length, bytes, padding to 4. Legacy blobs start with valid_hooks, hook_entry[5],
   * underflow[5] (u32 each) and the table name (32 bytes).
   */
  bool capture = false;
  std::vector<uint8_t> captured;
  void Capture(uint8_t kind, const void* p, size_t n, const void* prefix = nullptr, size_t plen = 0) {
    if (!capture) return;
    uint8_t hdr[8] = {kind, 0, 0, 0};
    uint32_t len = uint32_t(n + plen);
    std::memcpy(hdr + 4, &len, 4);
    captured.insert(captured.end(), hdr, hdr + 8);
    if (plen) captured.insert(captured.end(), static_cast<const uint8_t*>(prefix), static_cast<const uint8_t*>(prefix) + plen);
    captured.insert(captured.end(), static_cast<const uint8_t*>(p), static_cast<const uint8_t*>(p) + n);
    captured.insert(captured.end(), (4 - len % 4) % 4, 0);
  }

  const std::vector<uint8_t>& Data() const { return buf_; }
  std::vector<uint8_t>& Data() { return buf_; }
  size_t Size() const { return buf_.size(); }

 private:
  std::vector<uint8_t> buf_;
  size_t start_ = 0;
};

// ---- decoders: plain functions over kernel bytes, no N-API (fuzz targets call them) ----

/** nf_tables dump replies (NEWTABLE, NEWCHAIN, NEWRULE, NEWSETELEM messages back to back, as
 *  received) → table/chain/rule/lookup/set-element items. Returns malformed messages. */
uint32_t DecodeNftMessages(const uint8_t* data, size_t len, FactsWriter& out);

/** One x_tables target payload (an iptables-nft compat `target` expression or a legacy
 *  entry's target): NAT ranges, NFLOG groups, REJECT. nfproto: NFPROTO_IPV4 / _IPV6.
 *  Returns false when the payload is too short for what its name and revision promise. */
bool DecodeXtTarget(const char* name, uint8_t rev, uint8_t nfproto, const uint8_t* info, size_t len,
                    FactsWriter& out);

/** IPT_SO_GET_ENTRIES / IP6T_SO_GET_ENTRIES blob of one legacy table (family 4 or 6) →
 *  chain and rule items. hook_entry / underflow: offsets from *_SO_GET_INFO. Returns
 *  malformed entries (the walk stops at the first). */
uint32_t DecodeIptEntries(uint8_t family, const char* table, uint32_t valid_hooks, const uint32_t hook_entry[5],
                          const uint32_t underflow[5], const uint8_t* blob, size_t len, FactsWriter& out);

/** rtnetlink RTM_NEWLINK / RTM_NEWADDR dump replies → link and address items. */
uint32_t DecodeRtnlMessages(const uint8_t* data, size_t len, FactsWriter& out);

/** sock_diag SOCK_DIAG_BY_FAMILY replies (inet_diag_msg) for protocol proto → socket items. */
uint32_t DecodeInetDiagMessages(uint8_t proto, const uint8_t* data, size_t len, FactsWriter& out);

/** Socket items → one count item per (family, proto, src, dst, dport) of the host's own
 *  outbound connections: TCP in every state but LISTEN, minus connections accepted on a
 *  listening port; connected UDP; IPv4-mapped IPv6 as IPv4. */
void CountSockets(const uint8_t* items, size_t len, FactsWriter& out);

}  // namespace nw
