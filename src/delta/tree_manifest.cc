#include "delta/tree_manifest.h"

#include <algorithm>

#include "delta/byte_io.h"

namespace qp::delta {

Status ValidateRelativePath(const std::string& path) {
  auto bad = [&](const std::string& why) {
    std::string shown = path.size() > 200 ? path.substr(0, 200) + "..." : path;
    return Error(ErrorCode::kCorrupt, "unsafe path '" + shown + "': " + why);
  };
  if (path.empty()) return bad("empty");
  if (path.size() > kMaxPathLength) return bad("too long");
  if (path.find('\0') != std::string::npos) return bad("contains NUL");
  for (char c : path) {
    // Control characters in a name would reach terminals and logs as commands.
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return bad("contains a control character");
  }
  if (path.front() == '/') return bad("absolute");
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string_view part(path.data() + start, end - start);
    if (part.empty()) return bad("empty component");
    if (part == "." || part == "..") return bad("'.' or '..' component");
    if (part.size() > 255) return bad("component longer than 255 bytes");
    start = end + 1;
  }
  return OkStatus();
}

namespace {

// Streams a file's size and SHA-256; its bytes are appended to `*keep` while they fit in
// `keep_limit` bytes (past that, the bytes are dropped and `*keep` is set to nullptr).
Result<std::pair<std::uint64_t, Sha256Digest>> HashStream(Env* env, const std::string& path,
                                                          std::vector<std::uint8_t>** keep,
                                                          std::uint64_t keep_limit) {
  QP_ASSIGN_OR_RETURN(auto file, env->NewRandomAccessFile(path));
  if (*keep != nullptr && file->Size() > keep_limit) *keep = nullptr;
  if (*keep != nullptr) (*keep)->reserve(static_cast<std::size_t>(file->Size()));
  Sha256 h;
  std::vector<std::uint8_t> buf(256 * 1024);
  std::uint64_t off = 0;
  for (;;) {
    QP_ASSIGN_OR_RETURN(std::size_t n, file->ReadAt(off, buf));
    if (n == 0) break;
    std::span<const std::uint8_t> got(buf.data(), n);
    h.Update(got);
    if (*keep != nullptr && (*keep)->size() + n > keep_limit) {
      std::vector<std::uint8_t>().swap(**keep);
      *keep = nullptr;
    }
    if (*keep != nullptr) (*keep)->insert((*keep)->end(), got.begin(), got.end());
    off += n;
  }
  return std::make_pair(off, h.Finish());
}

}  // namespace

Result<std::pair<std::uint64_t, Sha256Digest>> HashFile(Env* env, const std::string& path) {
  std::vector<std::uint8_t>* keep = nullptr;
  return HashStream(env, path, &keep, 0);
}

Result<std::pair<std::uint64_t, Sha256Digest>> HashFile(Env* env, const std::string& path,
                                                        HeldSources* held,
                                                        const std::string& entry_path) {
  return held != nullptr ? held->Hash(env, entry_path, path) : HashFile(env, path);
}

Result<std::pair<std::uint64_t, Sha256Digest>> HeldSources::Hash(Env* env,
                                                                 const std::string& entry_path,
                                                                 const std::string& file) {
  if (wanted_.count(entry_path) == 0) return HashFile(env, file);
  if (auto it = held_.find(entry_path); it != held_.end()) {  // held early
    return std::make_pair(std::uint64_t{it->second.bytes.size()}, it->second.sha256);
  }
  QP_ASSIGN_OR_RETURN(auto opened, env->NewRandomAccessFile(file));
  if (opened->Size() <= budget_ - used_) {
    if (auto mapped = opened->Map(); mapped.ok()) {
      const std::span<const std::uint8_t> bytes = *mapped;
      used_ += bytes.size();
      Sha256 h;
      h.Update(bytes);
      const Sha256Digest digest = h.Finish();
      held_[entry_path] = Held{std::move(opened), {}, bytes, digest};
      return std::make_pair(std::uint64_t{bytes.size()}, digest);
    }
  }
  opened.reset();
  std::vector<std::uint8_t> bytes;
  std::vector<std::uint8_t>* keep = &bytes;
  QP_ASSIGN_OR_RETURN(auto hashed, HashStream(env, file, &keep, budget_ - used_));
  if (keep != nullptr) {
    used_ += bytes.size();
    Held& h = held_[entry_path];
    h.copy = std::move(bytes);
    h.bytes = h.copy;
    h.sha256 = hashed.second;
  }
  return hashed;
}

Status HeldSources::HoldEarly(Env* env, const std::string& root, const std::string& entry_path) {
  QP_RETURN_IF_ERROR(ValidateRelativePath(entry_path));
  for (std::size_t slash = entry_path.find('/'); slash != std::string::npos;
       slash = entry_path.find('/', slash + 1)) {
    QP_ASSIGN_OR_RETURN(FileInfo dir, env->Stat(JoinPath(root, entry_path.substr(0, slash))));
    if (dir.type != FileType::kDirectory) {
      return Error(ErrorCode::kNotFound, entry_path + ": a parent is not a directory");
    }
  }
  const std::string file = JoinPath(root, entry_path);
  QP_ASSIGN_OR_RETURN(FileInfo info, env->Stat(file));
  if (info.type != FileType::kRegular) {
    return Error(ErrorCode::kNotFound, entry_path + ": not a regular file");
  }
  auto hashed = Hash(env, entry_path, file);
  if (!hashed.ok()) return hashed.error();
  return OkStatus();
}

std::optional<std::span<const std::uint8_t>> HeldSources::Find(
    const std::string& entry_path) const {
  auto it = held_.find(entry_path);
  if (it == held_.end()) return std::nullopt;
  return it->second.bytes;
}

namespace {

Status ScanInto(Env* env, const std::string& root, const std::string& rel, HeldSources* held,
                Manifest* out) {
  std::string dir = rel.empty() ? root : JoinPath(root, rel);
  QP_ASSIGN_OR_RETURN(auto names, env->ListDir(dir));
  for (const auto& name : names) {
    std::string child_rel = rel.empty() ? name : rel + "/" + name;
    std::string child = JoinPath(root, child_rel);
    QP_ASSIGN_OR_RETURN(FileInfo info, env->Stat(child));
    ManifestEntry e;
    e.path = child_rel;
    e.mode = info.mode;
    switch (info.type) {
      case FileType::kRegular: {
        e.type = EntryType::kFile;
        QP_ASSIGN_OR_RETURN(auto hashed, HashFile(env, child, held, child_rel));
        e.size = hashed.first;
        e.sha256 = hashed.second;
        out->push_back(std::move(e));
        break;
      }
      case FileType::kSymlink: {
        e.type = EntryType::kSymlink;
        e.mode = 0777;
        QP_ASSIGN_OR_RETURN(std::string target, env->ReadLink(child));
        e.size = target.size();
        e.sha256 = Sha256Of(target);
        out->push_back(std::move(e));
        break;
      }
      case FileType::kDirectory:
        e.type = EntryType::kDirectory;
        out->push_back(std::move(e));
        QP_RETURN_IF_ERROR(ScanInto(env, root, child_rel, held, out));
        break;
      case FileType::kOther:
        return Error(ErrorCode::kUnsupported, child + ": not a file, directory or symlink");
    }
  }
  return OkStatus();
}

}  // namespace

Result<Manifest> ScanTree(Env* env, const std::string& root, HeldSources* held) {
  QP_ASSIGN_OR_RETURN(FileInfo info, env->Stat(root));
  if (info.type != FileType::kDirectory) {
    return Error(ErrorCode::kInvalidArgument, root + ": not a directory");
  }
  Manifest m;
  QP_RETURN_IF_ERROR(ScanInto(env, root, "", held, &m));
  std::sort(m.begin(), m.end(),
            [](const ManifestEntry& a, const ManifestEntry& b) { return a.path < b.path; });
  return m;
}

Result<Manifest> ScanSingleFile(Env* env, const std::string& path, HeldSources* held) {
  QP_ASSIGN_OR_RETURN(FileInfo info, env->Stat(path));
  if (info.type != FileType::kRegular) {
    return Error(ErrorCode::kInvalidArgument, path + ": not a regular file");
  }
  QP_ASSIGN_OR_RETURN(auto hashed, HashFile(env, path, held, "."));
  return Manifest{ManifestEntry{".", EntryType::kFile, info.mode, hashed.first, hashed.second}};
}

std::string ResolveEntryPath(const std::string& root, const std::string& path) {
  return path == "." ? root : JoinPath(root, path);
}

Sha256Digest ManifestDigest(const Manifest& manifest) {
  ByteWriter w;
  w.Bytes(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>("qp-tree-v1"), 10));
  w.Varint(manifest.size());
  for (const auto& e : manifest) {
    w.String(e.path);
    w.U8(static_cast<std::uint8_t>(e.type));
    w.Varint(e.mode);
    w.Varint(e.size);
    w.Bytes(e.sha256);
  }
  return Sha256Of(w.buffer());
}

}  // namespace qp::delta
