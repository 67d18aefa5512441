// Netlink attribute iterator in the style of mdlayher/netlink's AttributeDecoder: Next() walks
// the attributes of one message or nested attribute; the first malformed attribute or
// wrong-length read sets a sticky error, after which Next() returns false and every accessor
// returns zero. Netfilter payloads are big-endian under host-order netlink headers.
#pragma once
#include <linux/netlink.h>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace nw {

class AttrReader {
 public:
  AttrReader(const uint8_t* data, size_t len) : p_(data), len_(len) {}

  bool Next() {
    if (err_ || off_ >= len_) return false;
    if (len_ - off_ < NLA_HDRLEN) return Fail();
    uint16_t nla_len;
    uint16_t nla_type;
    std::memcpy(&nla_len, p_ + off_, 2);
    std::memcpy(&nla_type, p_ + off_ + 2, 2);
    if (nla_len < NLA_HDRLEN || nla_len > len_ - off_) return Fail();
    type_ = nla_type & NLA_TYPE_MASK;  // NLA_F_NESTED / NLA_F_NET_BYTEORDER masked off
    data_ = p_ + off_ + NLA_HDRLEN;
    dlen_ = nla_len - NLA_HDRLEN;
    size_t step = NLA_ALIGN(nla_len);
    off_ = step > len_ - off_ ? len_ : off_ + step;
    return true;
  }

  uint16_t Type() const { return type_; }
  size_t Len() const { return dlen_; }
  const uint8_t* Data() const { return data_; }
  bool Failed() const { return err_; }

  uint8_t U8() { return Want(1) ? data_[0] : 0; }
  uint16_t Be16() {
    if (!Want(2)) return 0;
    return static_cast<uint16_t>((data_[0] << 8) | data_[1]);
  }
  uint32_t Be32() {
    if (!Want(4)) return 0;
    return (uint32_t(data_[0]) << 24) | (uint32_t(data_[1]) << 16) | (uint32_t(data_[2]) << 8) |
           uint32_t(data_[3]);
  }
  uint64_t Be64() {
    if (!Want(8)) return 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = (v << 8) | data_[i];
    return v;
  }
  /** Copies exactly n bytes into out; a different length is an error. */
  bool Bytes(uint8_t* out, size_t n) {
    if (!Want(n)) return false;
    std::memcpy(out, data_, n);
    return true;
  }
  /** A reader over the current attribute's payload. */
  AttrReader Nested() const { return err_ ? AttrReader(nullptr, 0) : AttrReader(data_, dlen_); }

  /** Marks the reader failed (a nested reader's failure propagates through the caller). */
  bool Fail() {
    err_ = true;
    return false;
  }

 private:
  bool Want(size_t n) {
    if (err_) return false;
    if (dlen_ != n) return Fail();
    return true;
  }

  const uint8_t* p_;
  size_t len_;
  size_t off_ = 0;
  uint16_t type_ = 0;
  const uint8_t* data_ = nullptr;
  size_t dlen_ = 0;
  bool err_ = false;
};

}  // namespace nw
