// Building .qpatch files (see tree_patch.h).

#include <algorithm>
#include <map>
#include <memory>
#include <span>

#include "core/durable_file.h"
#include "delta/byte_io.h"
#include "delta/codec.h"
#include "delta/file_delta_format.h"
#include "delta/gzip_member.h"
#include "delta/tree_patch.h"

namespace qp::delta {
namespace {

// A file's bytes, read without first zero-filling a buffer as large as the file (a browser
// engine is 300 MB; filling it costs as much as reading it).
class FileBytes {
 public:
  static Result<FileBytes> Read(Env* env, const std::string& path) {
    QP_ASSIGN_OR_RETURN(auto file, env->NewRandomAccessFile(path));
    FileBytes out;
    out.size_ = file->Size();
    if (out.size_ > kMaxFileSize) {
      return Error(ErrorCode::kTooLarge, "read " + path + ": " + std::to_string(out.size_) +
                                             " bytes exceeds the limit of " +
                                             std::to_string(kMaxFileSize));
    }
    out.data_ = std::make_unique_for_overwrite<std::uint8_t[]>(std::max<std::size_t>(out.size_, 1));
    QP_ASSIGN_OR_RETURN(std::size_t n,
                        file->ReadAt(0, std::span<std::uint8_t>(out.data_.get(), out.size_)));
    if (n != out.size_) return Error(ErrorCode::kIo, "read " + path + ": the file shrank");
    return out;
  }
  std::span<const std::uint8_t> bytes() const { return {data_.get(), size_}; }

 private:
  std::unique_ptr<std::uint8_t[]> data_;
  std::size_t size_ = 0;
};

// "usr/lib/libfoo.so.1.2" -> "usr/lib/libfoo.so.#.#": names that differ only in version
// digits map to the same key.
std::string VersionlessKey(const std::string& path) {
  std::string out;
  bool in_digits = false;
  for (char c : path) {
    bool digit = c >= '0' && c <= '9';
    if (digit && !in_digits) out.push_back('#');
    if (!digit) out.push_back(c);
    in_digits = digit;
  }
  return out;
}

std::vector<std::uint8_t> EncodeFull(const EncodedStream& s, std::uint64_t raw_len) {
  ByteWriter w;
  w.U8(static_cast<std::uint8_t>(s.codec));
  w.U8(static_cast<std::uint8_t>(s.params.size()));
  w.Bytes(s.params);
  w.Varint(raw_len);
  w.Bytes(s.bytes);
  return w.Take();
}

Result<BuildStats> Build(Env* env, PatchKind kind, const std::string& old_root,
                         const Manifest& old_m, const std::string& new_root, const Manifest& new_m,
                         const std::string& patch_path, const BuildOptions& options) {
  std::map<std::string, const ManifestEntry*> old_by_path;
  std::map<Sha256Digest, const ManifestEntry*> old_by_sha;
  std::multimap<std::string, const ManifestEntry*> old_by_key;
  for (const auto& e : old_m) {
    old_by_path[e.path] = &e;
    if (e.type == EntryType::kFile) {
      old_by_sha.emplace(e.sha256, &e);
      old_by_key.emplace(VersionlessKey(e.path), &e);
    }
  }
  std::map<std::string, const ManifestEntry*> new_by_path;
  for (const auto& e : new_m) new_by_path[e.path] = &e;

  PatchHeader header;
  // Agents install tree patches only, so a file patch takes the compact header.
  header.version = kind == PatchKind::kFile ? kQpatchVersionCompact : kQpatchVersionX86;
  header.kind = kind;
  header.source_digest = ManifestDigest(old_m);
  header.result_digest = ManifestDigest(new_m);
  header.manifest = new_m;
  std::vector<std::uint8_t> payloads;
  BuildStats stats;
  auto add_record = [&](RecordOp op, const std::string& path, const std::string& source,
                        std::span<const std::uint8_t> payload) {
    header.records.push_back(PatchRecord{op, path, source, payloads.size(), payload.size()});
    if ((op == RecordOp::kDelta || op == RecordOp::kGzipDelta) && !payload.empty()) {
      if (payload[0] == kTransformArm64) {
        header.version = std::max(header.version, kQpatchVersionArm64);
      } else if (payload[0] == kTransformArm64Frames) {
        header.version = std::max(header.version, kQpatchVersionArm64Frames);
      }
    }
    payloads.insert(payloads.end(), payload.begin(), payload.end());
  };

  std::size_t index = 0;
  for (const auto& e : new_m) {
    ++index;
    auto old_it = old_by_path.find(e.path);
    const ManifestEntry* old = old_it == old_by_path.end() ? nullptr : old_it->second;
    if (e.type == EntryType::kDirectory) continue;
    if (e.type == EntryType::kSymlink) {
      if (old && old->type == EntryType::kSymlink && old->sha256 == e.sha256) {
        ++stats.files_unchanged;
        continue;
      }
      QP_ASSIGN_OR_RETURN(std::string target, env->ReadLink(ResolveEntryPath(new_root, e.path)));
      add_record(RecordOp::kSymlink, e.path, "",
                 std::span(reinterpret_cast<const std::uint8_t*>(target.data()), target.size()));
      ++stats.files_changed;
      continue;
    }
    if (old && old->type == EntryType::kFile && old->sha256 == e.sha256) {
      if (old->mode != e.mode) add_record(RecordOp::kMode, e.path, "", {});
      ++stats.files_unchanged;
      continue;
    }
    if (auto same = old_by_sha.find(e.sha256); same != old_by_sha.end()) {
      add_record(RecordOp::kCopy, e.path, same->second->path, {});
      ++stats.files_changed;
      continue;
    }
    if (options.on_file) options.on_file(e.path, index, new_m.size());
    // The source: the same path, else a predecessor with the same name but for version
    // digits that the new tree no longer has.
    const ManifestEntry* source = (old && old->type == EntryType::kFile) ? old : nullptr;
    if (source == nullptr) {
      auto [lo, hi] = old_by_key.equal_range(VersionlessKey(e.path));
      for (auto it = lo; it != hi; ++it) {
        if (new_by_path.count(it->second->path) == 0) {
          source = it->second;
          break;
        }
      }
    }
    QP_ASSIGN_OR_RETURN(FileBytes new_file,
                        FileBytes::Read(env, ResolveEntryPath(new_root, e.path)));
    const std::span<const std::uint8_t> new_data = new_file.bytes();
    std::vector<std::uint8_t> delta;
    RecordOp delta_op = RecordOp::kDelta;
    if (source != nullptr) {
      QP_ASSIGN_OR_RETURN(FileBytes old_file,
                          FileBytes::Read(env, ResolveEntryPath(old_root, source->path)));
      const std::span<const std::uint8_t> old_data = old_file.bytes();
      QP_ASSIGN_OR_RETURN(delta, DiffFile(old_data, new_data, options.diff));
      // Gzip files: a delta of the contents, when gzip -9n rebuilds the file exactly.
      if (auto gz = DiffGzipped(old_data, new_data, options.diff);
          gz.ok() && gz->size() < delta.size()) {
        delta = std::move(*gz);
        delta_op = RecordOp::kGzipDelta;
      }
    }
    // Whole content: tried cheaply first; the thorough encoders run only if it could win.
    // A delta under 1/256 of the file is kept without trying (a 90 MB library would take
    // longer to compress than its near-identical delta takes to make).
    if (source != nullptr && delta.size() * 256 < new_data.size()) {
      add_record(delta_op, e.path, source->path, delta);
      ++stats.files_changed;
      continue;
    }
    CompressOptions fast{true, false, 3, false};
    std::vector<std::uint8_t> full = EncodeFull(CompressBest(new_data, fast), new_data.size());
    // The thorough encoders save at most about a third on zstd -3 (xz -9 on executables
    // saves a quarter), so they run only where the delta is over 0.6 of the quick result.
    if (source == nullptr || delta.size() * 5 > full.size() * 3) {
      auto best = EncodeFull(CompressBest(new_data, options.diff.compress), new_data.size());
      if (best.size() < full.size()) full = std::move(best);
    }
    if (source != nullptr && delta.size() < full.size()) {
      add_record(delta_op, e.path, source->path, delta);
      ++stats.files_changed;
    } else {
      add_record(RecordOp::kFull, e.path, "", full);
      ++(old ? stats.files_changed : stats.files_added);
    }
  }
  for (const auto& e : old_m) {
    if (new_by_path.count(e.path) == 0) {
      add_record(RecordOp::kDelete, e.path, "", {});
      ++stats.paths_deleted;
    }
  }

  std::vector<std::uint8_t> out = EncodePatchHeader(header);
  out.insert(out.end(), payloads.begin(), payloads.end());
  if (env->Stat(patch_path).ok()) {
    return Error(ErrorCode::kAlreadyExists, patch_path + " exists; refusing to overwrite it");
  }
  QP_RETURN_IF_ERROR(WriteFileDurably(env, patch_path, out, 0644));
  stats.patch_bytes = out.size();
  return stats;
}

}  // namespace

Result<BuildStats> BuildTreePatch(Env* env, const std::string& old_root,
                                  const std::string& new_root, const std::string& patch_path,
                                  const BuildOptions& options) {
  QP_ASSIGN_OR_RETURN(Manifest old_m, ScanTree(env, old_root));
  QP_ASSIGN_OR_RETURN(Manifest new_m, ScanTree(env, new_root));
  return Build(env, PatchKind::kTree, old_root, old_m, new_root, new_m, patch_path, options);
}

Result<BuildStats> BuildFilePatch(Env* env, const std::string& old_file,
                                  const std::string& new_file, const std::string& patch_path,
                                  const BuildOptions& options) {
  QP_ASSIGN_OR_RETURN(Manifest old_m, ScanSingleFile(env, old_file));
  QP_ASSIGN_OR_RETURN(Manifest new_m, ScanSingleFile(env, new_file));
  return Build(env, PatchKind::kFile, old_file, old_m, new_file, new_m, patch_path, options);
}

}  // namespace qp::delta
