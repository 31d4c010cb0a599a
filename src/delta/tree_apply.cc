// Applying .qpatch files (see tree_patch.h): the old tree is read through the Env, the new
// one is written only through the caller's TreeSink.
#include <map>
#include <optional>

#include "core/durable_file.h"
#include "core/memory_file.h"
#include "core/tree_writer.h"
#include "delta/byte_io.h"
#include "delta/codec.h"
#include "delta/files_ahead.h"
#include "delta/gzip_member.h"
#include "delta/tree_patch.h"

namespace qp::delta {
namespace {

constexpr std::size_t kCopyChunk = 256 * 1024;
// Files up to this size may be made ahead in memory (FilesAhead); larger ones stream.
constexpr std::uint64_t kAheadFileBytes = 8u << 20;

// Hashes what passes through to the destination file (unless the producer hashes it
// itself, as a file delta does: each new file is hashed once).
class HashingSink final : public WritableFile {
 public:
  HashingSink(WritableFile* out, bool hash) : out_(out), hash_(hash) {}
  Status Append(std::span<const std::uint8_t> data) override {
    if (hash_) hasher_.Update(data);
    size_ += data.size();
    return out_->Append(data);
  }
  Status Sync() override { return out_->Sync(); }
  Status Close() override { return out_->Close(); }
  std::uint64_t size() const { return size_; }
  Sha256Digest Finish() { return hasher_.Finish(); }

 private:
  WritableFile* out_;
  bool hash_;
  Sha256 hasher_;
  std::uint64_t size_ = 0;
};

// The lane's jobs (files_ahead.h): a gzip delta's or a delta's new file, from the held
// bytes of its source and its payload [at, at + length) of the patch.
FilesAhead::Make GzipJob(std::span<const std::uint8_t> old, RandomAccessFile* patch,
                         std::uint64_t at, std::uint64_t length) {
  return [=]() -> Result<MadeFile> {
    MadeFile made;
    QP_ASSIGN_OR_RETURN(made.bytes, RecompressGzipDelta(old, *patch, at, length));
    return made;
  };
}

FilesAhead::Make DeltaJob(std::span<const std::uint8_t> old, RandomAccessFile* patch,
                          std::uint64_t at, std::uint64_t length, std::uint64_t size) {
  return [=]() -> Result<MadeFile> {
    MadeFile made;
    made.bytes.reserve(static_cast<std::size_t>(size));
    MemoryFile source(old);
    VectorSink out(&made.bytes, size);  // no more than the manifest's size
    QP_ASSIGN_OR_RETURN(FileApplyResult applied, ApplyFileDelta(source, *patch, at, length, out));
    made.sha256 = applied.sha256;
    return made;
  };
}

class Applier {
 public:
  Applier(Env* env, RandomAccessFile* patch, const PatchHeader& header, const SourceTree& source,
          TreeSink* sink)
      : env_(env),
        patch_(patch),
        header_(header),
        locate_(source.locate),
        held_(source.held),
        sink_(sink),
        own_ahead_(source.held != nullptr ? source.held->budget() : 0),
        ahead_(source.ahead != nullptr ? *source.ahead : own_ahead_),
        started_(source.ahead != nullptr) {
    for (const auto& e : source.manifest) old_by_path_[e.path] = &e;
  }

  // The delta records whose source is held in memory and whose file is not large may be
  // made ahead, on the lane's thread (files_ahead.h); gzip deltas first. The lane may have
  // begun before the scan (SourceTree::ahead) with some of them.
  void StartAhead() {
    if (held_ == nullptr) return;
    for (const auto& e : header_.manifest) {
      auto it = by_path_.find(e.path);
      if (e.type != EntryType::kFile || it == by_path_.end() || e.size > kAheadFileBytes) continue;
      const PatchRecord& r = header_.records[it->second];
      const bool gzip = r.op == RecordOp::kGzipDelta;
      if ((!gzip && r.op != RecordOp::kDelta) || !OldFile(r.source, "delta source").ok()) continue;
      const auto bytes = held_->Find(r.source);
      if (!bytes) continue;  // read and made in turn, by MakeFile
      const std::uint64_t at = header_.payload_start + r.payload_offset;
      ahead_.Add(e.path, e.size, gzip,
                 gzip ? GzipJob(*bytes, patch_, at, r.payload_length)
                      : DeltaJob(*bytes, patch_, at, r.payload_length, e.size));
    }
    if (!started_) ahead_.Start();
    ahead_.Seal();
  }

  Status IndexRecords() {
    for (std::size_t i = 0; i < header_.records.size(); ++i) {
      const PatchRecord& r = header_.records[i];
      if (r.op == RecordOp::kDelete) continue;
      if (!by_path_.emplace(r.path, i).second) {
        return RecordError(i, Error(ErrorCode::kCorrupt, "second record for the same path"));
      }
    }
    return OkStatus();
  }

  // Creates one manifest entry at `dest` of the sink.
  Status Produce(const ManifestEntry& e, const std::string& dest) {
    auto rec_it = by_path_.find(e.path);
    std::size_t index = rec_it == by_path_.end() ? SIZE_MAX : rec_it->second;
    const PatchRecord* rec = rec_it == by_path_.end() ? nullptr : &header_.records[index];
    if (rec != nullptr && ((e.type == EntryType::kSymlink) != (rec->op == RecordOp::kSymlink) ||
                           e.type == EntryType::kDirectory)) {
      return RecordError(index,
                         Error(ErrorCode::kCorrupt, "operation does not fit the entry type"));
    }
    Status s;
    switch (e.type) {
      case EntryType::kDirectory:
        s = sink_->MakeDirectory(dest, e.mode);
        break;
      case EntryType::kSymlink:
        s = MakeSymlink(e, rec, dest);
        break;
      case EntryType::kFile:
        s = MakeFile(e, rec, dest);
        break;
    }
    if (!s.ok()) {
      if (rec != nullptr) return RecordError(index, s.error());
      return s.error().WithContext(e.path);
    }
    return OkStatus();
  }

 private:
  Error RecordError(std::size_t index, const Error& e) const {
    const std::string& path = header_.records[index].path;
    return e.WithContext("patch record " + std::to_string(index) + " (" + path + ")");
  }

  Result<const ManifestEntry*> OldFile(const std::string& path, const char* role) {
    auto it = old_by_path_.find(path);
    if (it == old_by_path_.end() || it->second->type != EntryType::kFile) {
      return Error(ErrorCode::kCorrupt,
                   std::string(role) + " '" + path + "' is not a file of the old tree");
    }
    return it->second;
  }

  // An old file's bytes: those held while it was hashed, else the file.
  Result<std::unique_ptr<RandomAccessFile>> OpenOld(const std::string& path) {
    if (held_ != nullptr) {
      if (auto bytes = held_->Find(path)) {
        return std::unique_ptr<RandomAccessFile>(new MemoryFile(*bytes));
      }
    }
    return env_->NewRandomAccessFile(locate_(path));
  }

  Status MakeSymlink(const ManifestEntry& e, const PatchRecord* rec, const std::string& dest) {
    std::string target;
    if (rec != nullptr) {
      if (rec->payload_length > kMaxPathLength)
        return Error(ErrorCode::kCorrupt, "symlink target too long");
      std::vector<std::uint8_t> buf(static_cast<std::size_t>(rec->payload_length));
      QP_ASSIGN_OR_RETURN(std::size_t n,
                          patch_->ReadAt(header_.payload_start + rec->payload_offset, buf));
      if (n != buf.size()) return Error(ErrorCode::kCorrupt, "truncated symlink target");
      target.assign(buf.begin(), buf.end());
      // symlink(2) would keep only what comes before a NUL: the link would not be the one
      // the manifest's hash covers.
      if (target.empty() || target.find('\0') != std::string::npos) {
        return Error(ErrorCode::kCorrupt, "symlink target is empty or contains NUL");
      }
    } else {
      auto it = old_by_path_.find(e.path);
      if (it == old_by_path_.end() || it->second->type != EntryType::kSymlink) {
        return Error(ErrorCode::kCorrupt, "unchanged symlink missing from the old tree");
      }
      QP_ASSIGN_OR_RETURN(target, env_->ReadLink(locate_(e.path)));
    }
    if (Sha256Of(target) != e.sha256 || target.size() != e.size) {
      return Error(ErrorCode::kVerificationFailed, "symlink target does not match the manifest");
    }
    return sink_->MakeSymlink(dest, target);
  }

  Status CopyFrom(RandomAccessFile& src, WritableFile& out) {
    std::vector<std::uint8_t> buf(kCopyChunk);
    for (std::uint64_t off = 0;;) {
      QP_ASSIGN_OR_RETURN(std::size_t n, src.ReadAt(off, buf));
      if (n == 0) return OkStatus();
      QP_RETURN_IF_ERROR(out.Append(std::span<const std::uint8_t>(buf.data(), n)));
      off += n;
    }
  }

  Status DecodeFull(const PatchRecord& rec, WritableFile& out) {
    std::uint64_t start = header_.payload_start + rec.payload_offset;
    std::uint8_t head[64];
    std::size_t want =
        static_cast<std::size_t>(std::min<std::uint64_t>(rec.payload_length, sizeof head));
    QP_ASSIGN_OR_RETURN(std::size_t n, patch_->ReadAt(start, std::span(head, want)));
    ByteReader r(std::span<const std::uint8_t>(head, n));
    QP_ASSIGN_OR_RETURN(std::uint8_t codec, r.U8("content codec"));
    QP_ASSIGN_OR_RETURN(std::uint8_t nparams, r.U8("content codec parameters"));
    QP_ASSIGN_OR_RETURN(auto params, r.Bytes("content codec parameters", nparams));
    QP_ASSIGN_OR_RETURN(std::uint64_t raw, r.BoundedVarint("content length", kMaxFileSize));
    std::uint64_t used = r.position();
    QP_ASSIGN_OR_RETURN(auto dec,
                        StreamDecoder::Open(static_cast<Codec>(codec), params, patch_, start + used,
                                            rec.payload_length - used, raw, "content"));
    std::vector<std::uint8_t> buf(kCopyChunk);
    for (std::uint64_t done = 0; done < raw;) {
      std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), raw - done));
      QP_RETURN_IF_ERROR(dec->Read(std::span(buf.data(), k)));
      QP_RETURN_IF_ERROR(out.Append(std::span<const std::uint8_t>(buf.data(), k)));
      done += k;
    }
    return dec->Finish();
  }

  Status MakeFile(const ManifestEntry& e, const PatchRecord* rec, const std::string& dest) {
    // Unchanged content (no record, or only a mode change): link or copy from the old tree.
    const ManifestEntry* copy_from = nullptr;
    if (rec == nullptr || rec->op == RecordOp::kMode) {
      QP_ASSIGN_OR_RETURN(copy_from, OldFile(e.path, "unchanged file"));
    } else if (rec->op == RecordOp::kCopy) {
      QP_ASSIGN_OR_RETURN(copy_from, OldFile(rec->source, "copy source"));
    }
    if (copy_from != nullptr && copy_from->sha256 != e.sha256) {
      return Error(ErrorCode::kVerificationFailed, "old file differs from the manifest");
    }
    if (copy_from != nullptr && copy_from->mode == e.mode) {
      QP_ASSIGN_OR_RETURN(bool linked, sink_->LinkFile(dest, locate_(copy_from->path)));
      if (linked) return OkStatus();
    }
    // Made ahead by the lane, or by this thread now.
    std::optional<Result<MadeFile>> made;
    if (copy_from == nullptr) made = ahead_.Claim(e.path);
    if (made && !made->ok()) return made->error();
    QP_ASSIGN_OR_RETURN(auto file, sink_->NewFile(dest));
    // Each new file is hashed once: by a delta as it makes it, else as it is written here.
    const bool delta = copy_from == nullptr && rec->op == RecordOp::kDelta;
    HashingSink sink(file.get(), made ? !(*made)->sha256.has_value() : !delta);
    std::optional<Sha256Digest> hashed;  // by the producer
    Status s;
    if (made) {
      hashed = (*made)->sha256;
      s = sink.Append((*made)->bytes);
    } else if (copy_from != nullptr) {
      auto src = OpenOld(copy_from->path);
      s = src.ok() ? CopyFrom(**src, sink) : Status(src.error());
    } else if (rec->op == RecordOp::kFull) {
      s = DecodeFull(*rec, sink);
    } else if (rec->op == RecordOp::kDelta || rec->op == RecordOp::kGzipDelta) {
      auto source = OldFile(rec->source, "delta source");
      if (!source.ok()) return source.error();
      const std::uint64_t at = header_.payload_start + rec->payload_offset;
      if (auto src = OpenOld(rec->source); !src.ok()) {
        s = src.error();
      } else if (rec->op == RecordOp::kGzipDelta) {
        s = ApplyGzipDelta(**src, *patch_, at, rec->payload_length, sink);
      } else {
        auto r = ApplyFileDelta(**src, *patch_, at, rec->payload_length, sink);
        if (r.ok()) hashed = r->sha256;
        s = r.ok() ? OkStatus() : Status(r.error());
      }
    } else {
      s = Error(ErrorCode::kCorrupt, "operation does not produce a file");
    }
    if (s.ok() && sink.size() != e.size) {
      s = Error(ErrorCode::kVerificationFailed, "result is " + std::to_string(sink.size()) +
                                                    " bytes, manifest says " +
                                                    std::to_string(e.size));
    }
    if (s.ok() && (hashed ? *hashed : sink.Finish()) != e.sha256) {
      s = Error(ErrorCode::kVerificationFailed, "result SHA-256 does not match the manifest");
    }
    if (s.ok()) s = file->Sync();
    Status c = file->Close();
    if (s.ok()) s = c;
    if (s.ok()) s = sink_->SetFileMode(dest, e.mode);
    return s;
  }

  Env* env_;
  RandomAccessFile* patch_;
  const PatchHeader& header_;
  const std::function<std::string(const std::string&)>& locate_;
  const HeldSources* held_;
  TreeSink* sink_;
  std::map<std::string, const ManifestEntry*> old_by_path_;
  std::map<std::string, std::size_t> by_path_;
  FilesAhead own_ahead_;  // last: stopped before the rest goes
  FilesAhead& ahead_;     // own_ahead_, or the caller's
  bool started_;
};

}  // namespace

Status ApplyPatchFrom(Env* env, const SourceTree& source, RandomAccessFile& patch,
                      const PatchHeader& header, TreeSink& sink) {
  const bool file_kind = header.kind == PatchKind::kFile;
  Sha256Digest digest = ManifestDigest(source.manifest);
  if (digest != header.source_digest) {
    return Error(ErrorCode::kVerificationFailed,
                 source.name + " is not the " + (file_kind ? "file" : "tree") +
                     " this patch applies to (digest " + HexEncode(digest).substr(0, 16) +
                     "..., patch expects " + HexEncode(header.source_digest).substr(0, 16) +
                     "...)");
  }
  if (ManifestDigest(header.manifest) != header.result_digest) {
    return Error(ErrorCode::kCorrupt, "manifest does not match the result digest");
  }
  Applier applier(env, &patch, header, source, &sink);
  QP_RETURN_IF_ERROR(applier.IndexRecords());
  applier.StartAhead();
  if (file_kind) return applier.Produce(header.manifest[0], "");
  for (const auto& e : header.manifest) QP_RETURN_IF_ERROR(applier.Produce(e, e.path));
  return OkStatus();
}

std::set<std::string> PatchSources(const PatchHeader& header) {
  std::set<std::string> paths;
  for (const auto& r : header.records) {
    if (r.op == RecordOp::kDelta || r.op == RecordOp::kGzipDelta || r.op == RecordOp::kCopy) {
      paths.insert(r.source);
    } else if (r.op == RecordOp::kMode) {
      paths.insert(r.path);
    }
  }
  return paths;
}

Status ApplyPatchTo(Env* env, const std::string& old_path, RandomAccessFile& patch,
                    const PatchHeader& header, TreeSink& sink, std::uint64_t hold_bytes) {
  bool file_kind = header.kind == PatchKind::kFile;
  HeldSources held(hold_bytes > 0 ? PatchSources(header) : std::set<std::string>{}, hold_bytes);
  SourceTree source;
  source.name = old_path;
  source.held = &held;
  // Recompressing takes longest and needs only its own source: the gzip deltas' sources are
  // held first and the lane begins them while the rest of the tree is scanned. If the
  // tree then turns out not to be the patch's, what they made is never written.
  FilesAhead ahead(hold_bytes);
  if (hold_bytes > 0 && !file_kind) {
    std::map<std::string, std::uint64_t> gzip_sizes;
    for (const auto& r : header.records) {
      if (r.op == RecordOp::kGzipDelta) gzip_sizes[r.path] = UINT64_MAX;
    }
    for (const auto& e : header.manifest) {
      if (auto it = gzip_sizes.find(e.path); it != gzip_sizes.end()) it->second = e.size;
    }
    for (const auto& r : header.records) {
      if (r.op != RecordOp::kGzipDelta || gzip_sizes[r.path] > kAheadFileBytes) continue;
      if (!held.HoldEarly(env, old_path, r.source).ok()) continue;  // the scan will say why
      const auto bytes = held.Find(r.source);
      if (!bytes) continue;
      ahead.Add(r.path, gzip_sizes[r.path], true,
                GzipJob(*bytes, &patch, header.payload_start + r.payload_offset, r.payload_length));
    }
    ahead.Start();
    source.ahead = &ahead;
  }
  QP_ASSIGN_OR_RETURN(source.manifest, file_kind ? ScanSingleFile(env, old_path, &held)
                                                 : ScanTree(env, old_path, &held));
  source.locate = [&old_path](const std::string& path) { return ResolveEntryPath(old_path, path); };
  return ApplyPatchFrom(env, source, patch, header, sink);
}

Status ApplyPatch(Env* env, const std::string& old_path, const std::string& patch_path,
                  const std::string& new_path, const ApplyOptions& options) {
  QP_ASSIGN_OR_RETURN(auto patch, env->NewRandomAccessFile(patch_path));
  QP_ASSIGN_OR_RETURN(PatchHeader header, DecodePatchHeader(*patch));
  NewTreeOptions tree;
  tree.single_file = header.kind == PatchKind::kFile;
  tree.link_files = options.link_unchanged;
  return WriteNewTree(env, new_path, tree, [&](TreeSink& sink) {
    return ApplyPatchTo(env, old_path, *patch, header, sink, options.hold_bytes);
  });
}

}  // namespace qp::delta
