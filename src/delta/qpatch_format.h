// The .qpatch container (format version 4; docs/patch-format.md is the specification):
//
//   fixed header   magic "QPATCH\r\n", u16 version, u8 kind, u8 reserved, u32 header length
//   header         source digest, result digest (up to version 3), manifest, records
//   header hash    SHA-256 of everything before it (version 4: its first 8 bytes)
//   payloads       one per record that has one, at offsets the records give
//
// Decoding checks every length against the limits below before allocating, and checks
// the manifest's canonical order and path safety.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/hash.h"
#include "core/result.h"
#include "delta/tree_manifest.h"

namespace qp::delta {

inline constexpr char kQpatchMagic[8] = {'Q', 'P', 'A', 'T', 'C', 'H', '\r', '\n'};
// Version 2 added file-delta transform 2 (learned x86 prediction), version 3 transform 3
// (AArch64 prediction); older patches, which differ in nothing else, are still read. The
// differ writes the oldest version that holds what a tree patch uses (3 only for a patch with
// an AArch64 delta), so that agents that read version 2 still take every other patch.
// Version 4 is the compact header: no stored result digest (it is the manifest's), an 8-byte
// header check, and a file patch's single entry and records without paths. The differ writes
// it for file patches, which agents never take (they install tree patches only).
// Version 5 added transform 4 (AArch64 frame offsets); the differ writes it only for a patch
// that holds such a delta.
inline constexpr std::uint16_t kQpatchVersion = 5;
inline constexpr std::uint16_t kQpatchVersionArm64Frames = 5;
inline constexpr std::uint16_t kQpatchVersionCompact = 4;
inline constexpr std::uint16_t kQpatchVersionArm64 = 3;
inline constexpr std::uint16_t kQpatchVersionX86 = 2;
inline constexpr std::uint16_t kQpatchOldestVersion = 1;
inline constexpr std::uint32_t kMaxHeaderLength = 64u << 20;

enum class PatchKind : std::uint8_t { kTree = 1, kFile = 2 };

enum class RecordOp : std::uint8_t {
  kFull = 1,       // the file's whole content, compressed (payload: one encoded stream)
  kDelta = 2,      // a file delta against `source` in the old tree (payload: delta)
  kCopy = 3,       // identical to `source` in the old tree (renamed or duplicated; no payload)
  kSymlink = 4,    // a symlink; payload: its target
  kDelete = 5,     // `path` of the old tree is not in the new one (no payload)
  kMode = 6,       // same content as the old file at `path`, new permission bits (no payload)
  kGzipDelta = 7,  // a gzip file: a file delta of the decompressed contents against the
                   // decompressed `source`, recompressed with `gzip -9n` (version 2)
};

std::string_view RecordOpName(RecordOp op);

struct PatchRecord {
  RecordOp op = RecordOp::kFull;
  std::string path;
  std::string source;                // kDelta / kCopy: path in the old tree
  std::uint64_t payload_offset = 0;  // relative to the start of the payload area
  std::uint64_t payload_length = 0;
};

struct PatchHeader {
  std::uint16_t version = kQpatchVersion;
  PatchKind kind = PatchKind::kTree;
  Sha256Digest source_digest{};
  Sha256Digest result_digest{};
  Manifest manifest;
  std::vector<PatchRecord> records;
  std::uint64_t payload_start = 0;  // absolute offset of the payload area (set by decoding)
};

// Serializes the header (fixed part, body and header hash). Payloads follow it.
std::vector<std::uint8_t> EncodePatchHeader(const PatchHeader& header);

// Bytes of the header check after the header body: 32 (the SHA-256), 8 from version 4.
std::size_t HeaderCheckLength(std::uint16_t version);

// Reads and validates the header of a patch file: magic, version (kUnsupported for a
// version this build does not know), lengths within limits, header hash, manifest sorted and
// safe, every record naming a safe path and a payload inside the file. kCorrupt otherwise,
// naming the record.
Result<PatchHeader> DecodePatchHeader(RandomAccessFile& patch);

}  // namespace qp::delta
