// Activation of files in shared directories: each changed file is staged beside itself,
// swapped in by rename(2), and the journal lists the files so that recovery can roll every
// one of them forward or back.
#include "store/files_activation.h"

#include <set>

#include "core/durable_file.h"
#include "core/tree_writer.h"
#include "delta/tree_manifest.h"
#include "delta/tree_patch.h"

namespace qp::store {
namespace {

// The tree path of a live file: its absolute path without the leading '/'.
std::string TreePath(const std::string& file) { return file.substr(1); }

Status CopyFile(Env* env, const std::string& from, const std::string& to, mode_t mode) {
  QP_ASSIGN_OR_RETURN(auto in, env->NewRandomAccessFile(from));
  // A new file: whatever is at the name (a leftover, or something planted there) is
  // removed, not written through.
  QP_RETURN_IF_ERROR(RemoveTree(env, to));
  QP_ASSIGN_OR_RETURN(auto out, env->NewWritableFile(to, CreateMode::kExclusive, mode));
  std::vector<std::uint8_t> buf(1 << 20);
  std::uint64_t offset = 0;
  while (true) {
    QP_ASSIGN_OR_RETURN(std::size_t n, in->ReadAt(offset, buf));
    if (n == 0) break;
    QP_RETURN_IF_ERROR(out->Append(std::span<const std::uint8_t>(buf.data(), n)));
    offset += n;
  }
  QP_RETURN_IF_ERROR(out->Sync());
  QP_RETURN_IF_ERROR(out->Close());
  return env->Chmod(to, mode);
}

}  // namespace

FilesActivation::FilesActivation(Env* env, std::vector<std::string> files, std::string work_dir)
    : env_(env),
      files_(std::move(files)),
      work_dir_(std::move(work_dir)),
      view_(JoinPath(work_dir_, "view")),
      staged_(JoinPath(work_dir_, "staged")) {}

std::string FilesActivation::Sibling(const std::string& file, const char* suffix) {
  return JoinPath(DirName(file), "." + BaseName(file) + suffix);
}

Result<bool> FilesActivation::Exists(const std::string& path) {
  auto info = env_->Stat(path);
  if (info.ok()) return true;
  if (info.error().code() == ErrorCode::kNotFound) return false;
  return info.error();
}

Status FilesActivation::SyncDirsOf(const std::vector<std::string>& files) {
  std::set<std::string> dirs;
  for (const auto& f : files) dirs.insert(DirName(f));
  for (const auto& d : dirs) QP_RETURN_IF_ERROR(env_->SyncDir(d));
  return OkStatus();
}

Status FilesActivation::BuildView() {
  QP_RETURN_IF_ERROR(RemoveTree(env_, view_));
  QP_RETURN_IF_ERROR(MakeDirs(env_, view_, 0755));
  for (const auto& f : files_) {
    std::string dst = JoinPath(view_, TreePath(f));
    QP_RETURN_IF_ERROR(MakeDirs(env_, DirName(dst), 0755));
    // Directory modes are part of the tree digest: 0755 whatever the umask.
    for (std::string d = DirName(dst); d.size() > view_.size(); d = DirName(d)) {
      QP_RETURN_IF_ERROR(env_->Chmod(d, 0755));
    }
    QP_ASSIGN_OR_RETURN(FileInfo info, env_->Stat(f));
    if (info.type != FileType::kRegular) {
      return Error(ErrorCode::kInvalidArgument, f + ": not a regular file");
    }
    // A hard link when the state directory shares the file system, a copy otherwise.
    Status linked = env_->Link(f, dst);
    if (!linked.ok()) {
      if (linked.error().code() == ErrorCode::kCrashed) return linked;
      QP_RETURN_IF_ERROR(CopyFile(env_, f, dst, info.mode));
    }
  }
  return OkStatus();
}

Result<Sha256Digest> FilesActivation::LiveDigest() {
  // The same digest the view would have, computed without building it.
  delta::Manifest manifest;
  std::set<std::string> dirs;
  for (const auto& f : files_) {
    std::string path = TreePath(f);
    for (std::size_t slash = path.find('/'); slash != std::string::npos;
         slash = path.find('/', slash + 1)) {
      dirs.insert(path.substr(0, slash));
    }
    QP_ASSIGN_OR_RETURN(FileInfo info, env_->Stat(f));
    QP_ASSIGN_OR_RETURN(auto hashed, delta::HashFile(env_, f));
    manifest.push_back(delta::ManifestEntry{path, delta::EntryType::kFile, info.mode, hashed.first,
                                            hashed.second});
  }
  for (const auto& d : dirs) {
    manifest.push_back(delta::ManifestEntry{d, delta::EntryType::kDirectory, 0755, 0, {}});
  }
  std::sort(
      manifest.begin(), manifest.end(),
      [](const delta::ManifestEntry& a, const delta::ManifestEntry& b) { return a.path < b.path; });
  return delta::ManifestDigest(manifest);
}

Result<std::uint64_t> FilesActivation::AvailableBytes() {
  QP_ASSIGN_OR_RETURN(SpaceInfo space, env_->StatFs(DirName(files_.front())));
  QP_ASSIGN_OR_RETURN(SpaceInfo work, env_->StatFs(work_dir_));
  return std::min(space.available_bytes, work.available_bytes);
}

Status FilesActivation::CleanStaging() {
  QP_RETURN_IF_ERROR(RemoveTree(env_, view_));
  QP_RETURN_IF_ERROR(RemoveTree(env_, staged_));
  QP_ASSIGN_OR_RETURN(auto names, env_->ListDir(work_dir_));
  for (const auto& name : names) {
    if (name.rfind(BaseName(PartialTreePrefix(staged_)), 0) == 0) {
      QP_RETURN_IF_ERROR(RemoveTree(env_, JoinPath(work_dir_, name)));
    }
  }
  for (const auto& f : files_) {
    QP_RETURN_IF_ERROR(RemoveTree(env_, Sibling(f, ".qp-new")));
  }
  QP_RETURN_IF_ERROR(SyncDirsOf(files_));
  return env_->SyncDir(work_dir_);
}

Status FilesActivation::Stage(RandomAccessFile& patch, const delta::PatchHeader& header,
                              Journal* journal) {
  // The patch must keep exactly the configured set of files.
  std::set<std::string> expected;
  for (const auto& f : files_) expected.insert(TreePath(f));
  std::set<std::string> patched;
  for (const auto& e : header.manifest) {
    if (e.type == delta::EntryType::kDirectory) continue;
    if (e.type != delta::EntryType::kFile || expected.count(e.path) == 0) {
      return Error(ErrorCode::kInvalidArgument,
                   "patch entry " + e.path + " is not one of the component's files");
    }
    patched.insert(e.path);
  }
  if (patched != expected) {
    return Error(ErrorCode::kInvalidArgument, "patch does not cover every component file");
  }
  QP_RETURN_IF_ERROR(BuildView());
  NewTreeOptions options;
  options.link_files = true;
  QP_RETURN_IF_ERROR(WriteNewTree(env_, staged_, options, [&](TreeSink& sink) {
    return delta::ApplyPatchTo(env_, view_, patch, header, sink);
  }));
  // The staged files are what the manifest says: ApplyPatchTo checked each as it wrote it.
  if (HexEncode(header.result_digest) != journal->to.digest) {
    return Error(ErrorCode::kVerificationFailed,
                 "patch result digest differs from the improvement's signed digest");
  }
  const delta::Manifest& manifest = header.manifest;
  QP_ASSIGN_OR_RETURN(auto live, delta::ScanTree(env_, view_));
  journal->changed.clear();
  for (const auto& f : files_) {
    std::string p = TreePath(f);
    auto find = [&](const delta::Manifest& m) {
      return std::find_if(m.begin(), m.end(),
                          [&](const delta::ManifestEntry& e) { return e.path == p; });
    };
    auto a = find(live);
    auto b = find(manifest);
    if (a->sha256 == b->sha256 && a->mode == b->mode) continue;
    // Staged beside the live file (same file system, so the swap is one rename), durable.
    QP_RETURN_IF_ERROR(CopyFile(env_, JoinPath(staged_, p), Sibling(f, ".qp-new"), b->mode));
    journal->changed.push_back(f);
  }
  // The replaced files stay reachable as .qp-old until the install commits or rolls back.
  for (const auto& f : journal->changed) {
    std::string old = Sibling(f, ".qp-old");
    QP_RETURN_IF_ERROR(RemoveTree(env_, old));
    QP_RETURN_IF_ERROR(env_->Link(f, old));
  }
  return SyncDirsOf(journal->changed);
}

Status FilesActivation::Activate(const Journal& journal) {
  for (const auto& f : journal.changed) {
    QP_ASSIGN_OR_RETURN(bool staged, Exists(Sibling(f, ".qp-new")));
    if (staged) QP_RETURN_IF_ERROR(env_->Rename(Sibling(f, ".qp-new"), f));
  }
  return SyncDirsOf(journal.changed);
}

Status FilesActivation::Undo(const Journal& journal) {
  (void)journal;  // every file is checked: the journal may predate the list of changes
  for (const auto& f : files_) {
    std::string staged = Sibling(f, ".qp-new");
    std::string old = Sibling(f, ".qp-old");
    QP_ASSIGN_OR_RETURN(bool not_swapped, Exists(staged));
    if (not_swapped) QP_RETURN_IF_ERROR(env_->Unlink(staged));
    QP_ASSIGN_OR_RETURN(bool has_old, Exists(old));
    if (!has_old) continue;
    QP_ASSIGN_OR_RETURN(FileInfo o, env_->Stat(old));
    QP_ASSIGN_OR_RETURN(FileInfo live, env_->Stat(f));
    if (o.inode == live.inode && o.device == live.device) {
      // f was not replaced yet: .qp-old is only a second name of it.
      QP_RETURN_IF_ERROR(env_->Unlink(old));
    } else {
      QP_RETURN_IF_ERROR(env_->Rename(old, f));  // the old file back in place
    }
  }
  QP_RETURN_IF_ERROR(SyncDirsOf(files_));
  return CleanStaging();
}

Status FilesActivation::Commit(const Journal& journal) {
  std::set<std::string> changed(journal.changed.begin(), journal.changed.end());
  for (const auto& f : files_) {
    std::string old = Sibling(f, ".qp-old");
    std::string previous = Sibling(f, ".qp-previous");
    if (changed.count(f) != 0) {
      QP_ASSIGN_OR_RETURN(bool has_old, Exists(old));
      if (has_old) QP_RETURN_IF_ERROR(env_->Rename(old, previous));
    } else {
      // Unchanged by this install: the previous state of f is f itself; an older rollback
      // copy would bring back a state that is no longer the previous one.
      QP_RETURN_IF_ERROR(RemoveTree(env_, previous));
    }
  }
  QP_RETURN_IF_ERROR(SyncDirsOf(files_));
  return CleanStaging();
}

Status FilesActivation::PrepareRestore(Journal* journal) {
  journal->changed.clear();
  for (const auto& f : files_) {
    QP_ASSIGN_OR_RETURN(bool has, Exists(Sibling(f, ".qp-previous")));
    if (has) journal->changed.push_back(f);
  }
  return OkStatus();
}

Status FilesActivation::Restore(const Journal& journal) {
  for (const auto& f : journal.changed) {
    std::string previous = Sibling(f, ".qp-previous");
    QP_ASSIGN_OR_RETURN(bool has, Exists(previous));
    if (!has) continue;  // restored before a crash
    QP_ASSIGN_OR_RETURN(FileInfo a, env_->Stat(previous));
    QP_ASSIGN_OR_RETURN(FileInfo b, env_->Stat(f));
    if (a.inode == b.inode && a.device == b.device) {
      QP_RETURN_IF_ERROR(env_->Unlink(previous));  // rename would keep both names
    } else {
      QP_RETURN_IF_ERROR(env_->Rename(previous, f));
    }
  }
  return SyncDirsOf(files_);
}

Result<bool> FilesActivation::HasPreviousCopy() {
  for (const auto& f : files_) {
    QP_ASSIGN_OR_RETURN(bool has, Exists(Sibling(f, ".qp-previous")));
    if (has) return true;
  }
  return false;
}

Status FilesActivation::DropPrevious() {
  for (const auto& f : files_) QP_RETURN_IF_ERROR(RemoveTree(env_, Sibling(f, ".qp-previous")));
  return SyncDirsOf(files_);
}

std::vector<std::pair<std::string, std::string>> FilesActivation::MappedPathAliases() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& f : files_) {
    out.emplace_back(f, f);
    out.emplace_back(Sibling(f, ".qp-previous"), f);
    out.emplace_back(Sibling(f, ".qp-old"), f);
  }
  return out;
}

}  // namespace qp::store
