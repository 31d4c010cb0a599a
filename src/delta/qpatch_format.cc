#include "delta/qpatch_format.h"

#include <cstring>
#include <set>

#include "delta/byte_io.h"

namespace qp::delta {

std::string_view RecordOpName(RecordOp op) {
  switch (op) {
    case RecordOp::kFull:
      return "full";
    case RecordOp::kDelta:
      return "delta";
    case RecordOp::kCopy:
      return "copy";
    case RecordOp::kSymlink:
      return "symlink";
    case RecordOp::kDelete:
      return "delete";
    case RecordOp::kMode:
      return "mode";
    case RecordOp::kGzipDelta:
      return "gzip-delta";
  }
  return "unknown";
}

namespace {

// A version 4 file patch: its one entry and its records are "." without saying so.
bool IsCompactFile(const PatchHeader& h) {
  return h.version >= kQpatchVersionCompact && h.kind == PatchKind::kFile;
}

}  // namespace

std::vector<std::uint8_t> EncodePatchHeader(const PatchHeader& header) {
  const bool compact = header.version >= kQpatchVersionCompact;
  const bool compact_file = IsCompactFile(header);
  ByteWriter body;
  body.Bytes(header.source_digest);
  if (!compact) body.Bytes(header.result_digest);
  if (!compact_file) body.Varint(header.manifest.size());
  for (const auto& e : header.manifest) {
    if (!compact_file) {
      body.String(e.path);
      body.U8(static_cast<std::uint8_t>(e.type));
    }
    body.Varint(e.mode);
    body.Varint(e.size);
    body.Bytes(e.sha256);
  }
  body.Varint(header.records.size());
  for (const auto& r : header.records) {
    body.U8(static_cast<std::uint8_t>(r.op));
    if (!compact_file) {
      body.String(r.path);
      body.String(r.source);
    }
    body.Varint(r.payload_offset);
    body.Varint(r.payload_length);
  }
  ByteWriter out;
  out.Bytes(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(kQpatchMagic), 8));
  out.U8(static_cast<std::uint8_t>(header.version & 0xff));
  out.U8(static_cast<std::uint8_t>(header.version >> 8));
  out.U8(static_cast<std::uint8_t>(header.kind));
  out.U8(0);
  out.U32(static_cast<std::uint32_t>(body.buffer().size()));
  out.Bytes(body.buffer());
  Sha256Digest h = Sha256Of(out.buffer());
  out.Bytes(std::span<const std::uint8_t>(h).first(HeaderCheckLength(header.version)));
  return out.Take();
}

namespace {

Error RecordError(std::size_t index, const std::string& path, const Error& e) {
  return e.WithContext("patch record " + std::to_string(index) + " (" +
                       (path.size() > 200 ? path.substr(0, 200) + "..." : path) + ")");
}

// The manifest of a header body. A compact file patch (version 4) holds the single entry
// "." without its path, type or count.
Status ReadManifest(ByteReader& r, PatchHeader& h, std::uint32_t body_len) {
  const bool compact_file = IsCompactFile(h);
  std::uint64_t count = 1;
  if (!compact_file) {
    QP_ASSIGN_OR_RETURN(count, r.BoundedVarint("manifest entry count", kMaxEntries));
  }
  h.manifest.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(count, body_len / 36 + 1)));
  std::set<std::string> dirs;
  for (std::uint64_t i = 0; i < count; ++i) {
    ManifestEntry e;
    std::uint8_t type = static_cast<std::uint8_t>(EntryType::kFile);
    if (compact_file) {
      e.path = ".";
    } else {
      QP_ASSIGN_OR_RETURN(e.path, r.String("manifest path", kMaxPathLength));
      QP_ASSIGN_OR_RETURN(type, r.U8("manifest type"));
    }
    QP_ASSIGN_OR_RETURN(std::uint64_t mode, r.BoundedVarint("manifest mode", 07777));
    QP_ASSIGN_OR_RETURN(e.size, r.Varint("manifest size"));
    QP_ASSIGN_OR_RETURN(auto sha, r.Bytes("manifest hash", 32));
    std::memcpy(e.sha256.data(), sha.data(), 32);
    e.mode = static_cast<std::uint32_t>(mode);
    auto where = "manifest entry " + std::to_string(i);
    if (type < 1 || type > 3) {
      return Error(ErrorCode::kCorrupt, where + ": unknown type " + std::to_string(type));
    }
    e.type = static_cast<EntryType>(type);
    if (h.kind == PatchKind::kFile) {
      if (count != 1 || e.path != "." || e.type != EntryType::kFile) {
        return Error(ErrorCode::kCorrupt, "a file patch holds exactly one file entry '.'");
      }
    } else {
      Status ok = ValidateRelativePath(e.path);
      if (!ok.ok()) return ok.error().WithContext(where);
      if (!h.manifest.empty() && !(h.manifest.back().path < e.path)) {
        return Error(ErrorCode::kCorrupt, where + ": paths not in strictly ascending order");
      }
      // A path may only live inside a directory of the same manifest: no writing through a
      // symlink or into a file.
      auto slash = e.path.rfind('/');
      if (slash != std::string::npos && dirs.count(e.path.substr(0, slash)) == 0) {
        return Error(ErrorCode::kCorrupt,
                     where + " (" + e.path + "): parent is not a directory of the tree");
      }
      if (e.type == EntryType::kDirectory) dirs.insert(e.path);
    }
    h.manifest.push_back(std::move(e));
  }
  return OkStatus();
}

// The records of a header body. A compact file patch's records name neither path nor
// source: both are ".".
Status ReadRecords(ByteReader& r, PatchHeader& h, std::uint64_t payload_size) {
  const bool compact_file = IsCompactFile(h);
  QP_ASSIGN_OR_RETURN(std::uint64_t rcount, r.BoundedVarint("record count", 2 * kMaxEntries));
  for (std::uint64_t i = 0; i < rcount; ++i) {
    PatchRecord rec;
    QP_ASSIGN_OR_RETURN(std::uint8_t op, r.U8("record op"));
    if (compact_file) {
      rec.path = ".";
      rec.source = ".";
    } else {
      QP_ASSIGN_OR_RETURN(rec.path, r.String("record path", kMaxPathLength));
      QP_ASSIGN_OR_RETURN(rec.source, r.String("record source", kMaxPathLength));
    }
    QP_ASSIGN_OR_RETURN(rec.payload_offset, r.Varint("record payload offset"));
    QP_ASSIGN_OR_RETURN(rec.payload_length, r.Varint("record payload length"));
    auto idx = static_cast<std::size_t>(i);
    if (op < 1 || op > 7) {
      return RecordError(idx, rec.path,
                         Error(ErrorCode::kCorrupt, "unknown operation " + std::to_string(op)));
    }
    rec.op = static_cast<RecordOp>(op);
    if (h.kind == PatchKind::kTree) {
      Status ok = ValidateRelativePath(rec.path);
      if (!ok.ok()) return RecordError(idx, rec.path, ok.error());
      if (rec.op == RecordOp::kDelta || rec.op == RecordOp::kCopy ||
          rec.op == RecordOp::kGzipDelta) {
        Status s = ValidateRelativePath(rec.source);
        if (!s.ok()) return RecordError(idx, rec.path, s.error().WithContext("source"));
      }
    } else if (rec.path != "." || (rec.op != RecordOp::kFull && rec.op != RecordOp::kDelta &&
                                   rec.op != RecordOp::kCopy && rec.op != RecordOp::kMode &&
                                   rec.op != RecordOp::kGzipDelta)) {
      return RecordError(idx, rec.path, Error(ErrorCode::kCorrupt, "not valid in a file patch"));
    }
    if (rec.payload_offset > payload_size ||
        rec.payload_length > payload_size - rec.payload_offset) {
      return RecordError(idx, rec.path,
                         Error(ErrorCode::kCorrupt, "payload lies outside the patch (truncated?)"));
    }
    h.records.push_back(std::move(rec));
  }
  return OkStatus();
}

}  // namespace

std::size_t HeaderCheckLength(std::uint16_t version) {
  return version >= kQpatchVersionCompact ? 8 : 32;
}

Result<PatchHeader> DecodePatchHeader(RandomAccessFile& patch) {
  std::uint8_t fixed[16];
  QP_ASSIGN_OR_RETURN(std::size_t n, patch.ReadAt(0, fixed));
  if (n < 8 || std::memcmp(fixed, kQpatchMagic, 8) != 0) {
    return Error(ErrorCode::kCorrupt, "not a quietpatch patch (bad magic)");
  }
  if (n < 16) return Error(ErrorCode::kCorrupt, "truncated patch header");
  PatchHeader h;
  h.version = static_cast<std::uint16_t>(fixed[8] | fixed[9] << 8);
  if (h.version < kQpatchOldestVersion || h.version > kQpatchVersion) {
    return Error(ErrorCode::kUnsupported, "patch format version " + std::to_string(h.version) +
                                              " is not supported (this build reads versions " +
                                              std::to_string(kQpatchOldestVersion) + " to " +
                                              std::to_string(kQpatchVersion) + ")");
  }
  if (fixed[10] != static_cast<std::uint8_t>(PatchKind::kTree) &&
      fixed[10] != static_cast<std::uint8_t>(PatchKind::kFile)) {
    return Error(ErrorCode::kCorrupt, "unknown patch kind " + std::to_string(fixed[10]));
  }
  h.kind = static_cast<PatchKind>(fixed[10]);
  std::uint32_t body_len = static_cast<std::uint32_t>(fixed[12]) | fixed[13] << 8 |
                           fixed[14] << 16 | static_cast<std::uint32_t>(fixed[15]) << 24;
  if (body_len > kMaxHeaderLength) {
    return Error(ErrorCode::kTooLarge,
                 "patch header of " + std::to_string(body_len) + " bytes exceeds the limit");
  }
  const std::size_t check_len = HeaderCheckLength(h.version);
  if (16 + std::uint64_t{body_len} + check_len > patch.Size()) {
    return Error(ErrorCode::kCorrupt, "truncated patch header");
  }
  std::vector<std::uint8_t> all(16 + body_len + check_len);
  QP_ASSIGN_OR_RETURN(n, patch.ReadAt(0, all));
  if (n != all.size()) return Error(ErrorCode::kCorrupt, "truncated patch header");
  Sha256Digest computed = Sha256Of(std::span(all).first(16 + body_len));
  if (!ConstantTimeEquals(std::span<const std::uint8_t>(computed).first(check_len),
                          std::span(all).subspan(16 + body_len, check_len))) {
    return Error(ErrorCode::kCorrupt, "patch header hash mismatch (damaged patch)");
  }
  h.payload_start = all.size();
  std::uint64_t payload_size = patch.Size() - h.payload_start;

  ByteReader r(std::span<const std::uint8_t>(all).subspan(16, body_len));
  QP_ASSIGN_OR_RETURN(auto src, r.Bytes("source digest", 32));
  std::memcpy(h.source_digest.data(), src.data(), 32);
  const bool compact = h.version >= kQpatchVersionCompact;
  if (!compact) {
    QP_ASSIGN_OR_RETURN(auto res, r.Bytes("result digest", 32));
    std::memcpy(h.result_digest.data(), res.data(), 32);
  }
  QP_RETURN_IF_ERROR(ReadManifest(r, h, body_len));
  // Version 4 does not carry the result digest: it is the manifest's, by definition.
  if (compact) h.result_digest = ManifestDigest(h.manifest);
  QP_RETURN_IF_ERROR(ReadRecords(r, h, payload_size));
  if (r.remaining() != 0) return Error(ErrorCode::kCorrupt, "trailing bytes in patch header");
  return h;
}

}  // namespace qp::delta
