// Packed batch layout shared with src/source/codec.ts (its LAYOUT block mirrors this one; the
// test test/unit/native-layout.test.ts pins both). Little-endian, host order: the batch never
// leaves the machine. Bump kBatchVersion on any change.
#pragma once
#include <cstdint>

namespace nw {

constexpr uint32_t kBatchMagic = 0x3142574e;  // "NWB1"
constexpr uint16_t kBatchVersion = 4;

// Batch kinds.
constexpr uint8_t kKindConntrack = 1;
constexpr uint8_t kKindNflog = 2;
constexpr uint8_t kKindStats = 3;

// Header flags. A dump's begin precedes the batch's records, its end follows them. (v4: the
// reader waits for JS instead of dropping a batch, so no dump end is ever carried over; the
// old "end before" flag, 4, is gone.)
constexpr uint8_t kFlagDumpBegin = 1;
constexpr uint8_t kFlagDumpEnd = 2;
constexpr uint8_t kFlagDumpError = 8;

// Header: 48 bytes (a multiple of 8: records start with an f64).
constexpr uint32_t kHdrMagic = 0;         // u32
constexpr uint32_t kHdrVersion = 4;       // u16
constexpr uint32_t kHdrKind = 6;          // u8
constexpr uint32_t kHdrFlags = 7;         // u8
constexpr uint32_t kHdrCount = 8;         // u32 records in this batch
constexpr uint32_t kHdrRecordSize = 12;   // u32
constexpr uint32_t kHdrEnobufs = 16;      // u32 recv() ENOBUFS returns since previous batch
// u32 events the kernel delivered but the reader lost since the previous batch: a datagram
// larger than its receive slot (MSG_TRUNC) or a record with no memory for its batch. Loss like
// ENOBUFS: the consumer re-dumps the table. (Before v4: records dropped on a full queue.)
constexpr uint32_t kHdrDropped = 20;
constexpr uint32_t kHdrSeqGap = 24;       // u32 NFLOG sequence numbers skipped since previous
constexpr uint32_t kHdrDecodeErrors = 28; // u32 malformed messages/attributes since previous
constexpr uint32_t kHdrUnknownAttrs = 32; // u32 attributes skipped as unknown since previous
constexpr uint32_t kHdrErrno = 36;        // u32 reader error (errno) to report, 0 none
// u32 events the kernel could not queue to this socket since the previous batch: the delta of
// its SO_MEMINFO SK_MEMINFO_DROPS (= /proc/net/netlink Drops); exact, where one ENOBUFS can
// stand for thousands of lost events.
constexpr uint32_t kHdrKernelDrops = 40;
// u32 netlink messages dropped since the previous batch because their sender was not the
// kernel (nl_pid != 0): another process wrote to our socket's port id.
constexpr uint32_t kHdrForeign = 44;
constexpr uint32_t kHeaderSize = 48;

// Conntrack record: 104 bytes. Addresses are 16 bytes (IPv4 in the first 4).
constexpr uint32_t kCtTs = 0;          // f64 receive time, ms since epoch
constexpr uint32_t kCtId = 8;          // u32 CTA_ID
constexpr uint32_t kCtStatus = 12;     // u32 CTA_STATUS
constexpr uint32_t kCtTimeout = 16;    // u32 CTA_TIMEOUT, s
constexpr uint32_t kCtMark = 20;       // u32 CTA_MARK
constexpr uint32_t kCtZone = 24;       // u16 CTA_ZONE
constexpr uint32_t kCtKind = 26;       // u8 1 new, 2 update, 3 destroy, 4 dump
constexpr uint32_t kCtFamily = 27;     // u8 4 or 6
constexpr uint32_t kCtProto = 28;      // u8 IP protocol number
constexpr uint32_t kCtTcpState = 29;   // i8 CTA_PROTOINFO_TCP_STATE, -1 absent
constexpr uint32_t kCtReserved = 30;   // u16
constexpr uint32_t kCtOrigSport = 32;  // u16 (ICMP id where ports do not apply)
constexpr uint32_t kCtOrigDport = 34;  // u16
constexpr uint32_t kCtReplySport = 36; // u16
constexpr uint32_t kCtReplyDport = 38; // u16
constexpr uint32_t kCtOrigSrc = 40;    // 16 bytes
constexpr uint32_t kCtOrigDst = 56;
constexpr uint32_t kCtReplySrc = 72;
constexpr uint32_t kCtReplyDst = 88;
constexpr uint32_t kCtRecordSize = 104;

// NFLOG record: 232 bytes.
constexpr uint32_t kNlTs = 0;          // f64
constexpr uint32_t kNlSeq = 8;         // u32 NFULA_SEQ (valid when kNlFlagSeq)
constexpr uint32_t kNlMark = 12;       // u32
constexpr uint32_t kNlLen = 16;        // u32 packet length from its IP header
constexpr uint32_t kNlGroup = 20;      // u16
constexpr uint32_t kNlFamily = 22;     // u8 4 or 6 (0 unknown)
constexpr uint32_t kNlProto = 23;      // u8
constexpr uint32_t kNlSport = 24;      // u16
constexpr uint32_t kNlDport = 26;      // u16
constexpr uint32_t kNlHook = 28;       // u8
constexpr uint32_t kNlFlags = 29;      // u8 bit0 seq, bit1 indev, bit2 outdev
constexpr uint32_t kNlPrefixLen = 30;  // u8
constexpr uint32_t kNlReserved = 31;   // u8
constexpr uint32_t kNlIndex = 32;      // u32 indev ifindex
constexpr uint32_t kNlOutdex = 36;     // u32 outdev ifindex
constexpr uint32_t kNlSrc = 40;        // 16 bytes
constexpr uint32_t kNlDst = 56;        // 16 bytes
constexpr uint32_t kNlIndevName = 72;  // 16 bytes, NUL padded (IFNAMSIZ)
constexpr uint32_t kNlOutdevName = 88; // 16 bytes
constexpr uint32_t kNlPrefix = 104;    // 128 bytes (NF_LOG_PREFIXLEN), not NUL terminated
constexpr uint32_t kNlPrefixMax = 128;
constexpr uint32_t kNlRecordSize = 232;
constexpr uint8_t kNlFlagSeq = 1;
constexpr uint8_t kNlFlagIndev = 2;
constexpr uint8_t kNlFlagOutdev = 4;

// Stats record (kind 3): 12 x f64 (sums of per-CPU u32 can pass 2^32): CTA_STATS_* summed
// over CPUs, the number of CPUs that answered, then the global entry count.
constexpr uint32_t kStFound = 0;
constexpr uint32_t kStInvalid = 8;
constexpr uint32_t kStInsert = 16;
constexpr uint32_t kStInsertFailed = 24;
constexpr uint32_t kStDrop = 32;
constexpr uint32_t kStEarlyDrop = 40;
constexpr uint32_t kStError = 48;
constexpr uint32_t kStSearchRestart = 56;
constexpr uint32_t kStClashResolve = 64;
constexpr uint32_t kStChainTooLong = 72;
constexpr uint32_t kStCpus = 80;
constexpr uint32_t kStCount = 88;
constexpr uint32_t kStRecordSize = 96;

}  // namespace nw
