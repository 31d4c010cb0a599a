// Activation of files in shared directories: each changed file is staged beside itself,
// swapped in by rename(2), and the journal lists the files so that recovery can roll every
// one of them forward or back.
#include "store/files_activation.h"

#include <algorithm>
#include <functional>
#include <set>

#include "core/durable_file.h"
#include "core/tree_writer.h"
#include "delta/tree_manifest.h"
#include "delta/tree_patch.h"

namespace qp::store {
namespace {

// The tree path of a live file: its absolute path without the leading '/'.
std::string TreePath(const std::string& file) { return file.substr(1); }

// The sink a shared-files patch writes into: each file whose content or mode changes is
// written straight to its hidden sibling .NAME.qp-new, in its own directory (same file
// system, so activation is one rename); unchanged files are left where they are, and the
// directories are the live ones.
class SiblingSink final : public TreeSink {
 public:
  SiblingSink(Env* env, std::function<std::string(const std::string&)> sibling)
      : env_(env), sibling_(std::move(sibling)) {}

  Status MakeDirectory(const std::string&, std::uint32_t) override { return OkStatus(); }
  Status MakeSymlink(const std::string& path, const std::string&) override {
    return Error(ErrorCode::kInvalidArgument, "patch entry " + path + " is a symlink");
  }
  Result<bool> LinkFile(const std::string& path, const std::string& existing) override {
    // The live file itself, unchanged: nothing to stage. Another file's content (a copy
    // record) is written out.
    return existing == "/" + path;
  }
  Result<std::unique_ptr<WritableFile>> NewFile(const std::string& path) override {
    std::string staged = sibling_("/" + path);
    // Whatever is at the name (a leftover, or something planted there) is removed, not
    // written through.
    QP_RETURN_IF_ERROR(RemoveTree(env_, staged));
    QP_ASSIGN_OR_RETURN(auto file, env_->NewWritableFile(staged, CreateMode::kExclusive, 0600));
    changed_.push_back("/" + path);
    return file;
  }
  Status SetFileMode(const std::string& path, std::uint32_t mode) override {
    return env_->Chmod(sibling_("/" + path), mode);
  }
  // The live files that got a staged sibling, in manifest order.
  const std::vector<std::string>& changed() const { return changed_; }

 private:
  Env* env_;
  std::function<std::string(const std::string&)> sibling_;
  std::vector<std::string> changed_;
};

}  // namespace

FilesActivation::FilesActivation(Env* env, std::vector<std::string> files, std::string work_dir,
                                 std::uint64_t hold_bytes)
    : env_(env),
      files_(std::move(files)),
      work_dir_(std::move(work_dir)),
      hold_bytes_(hold_bytes) {}

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

Result<Sha256Digest> FilesActivation::LiveDigest() {
  QP_ASSIGN_OR_RETURN(auto manifest, LiveManifest());
  return delta::ManifestDigest(manifest);
}

Result<delta::Manifest> FilesActivation::LiveManifest(delta::HeldSources* held) {
  // The files as one tree: each at its absolute path without the leading '/', under
  // directories of mode 0755.
  delta::Manifest manifest;
  std::set<std::string> dirs;
  for (const auto& f : files_) {
    std::string path = TreePath(f);
    for (std::size_t slash = path.find('/'); slash != std::string::npos;
         slash = path.find('/', slash + 1)) {
      dirs.insert(path.substr(0, slash));
    }
    QP_ASSIGN_OR_RETURN(FileInfo info, env_->Stat(f));
    QP_ASSIGN_OR_RETURN(auto hashed, delta::HashFile(env_, f, held, path));
    manifest.push_back(delta::ManifestEntry{path, delta::EntryType::kFile, info.mode, hashed.first,
                                            hashed.second});
  }
  for (const auto& d : dirs) {
    manifest.push_back(delta::ManifestEntry{d, delta::EntryType::kDirectory, 0755, 0, {}});
  }
  std::sort(
      manifest.begin(), manifest.end(),
      [](const delta::ManifestEntry& a, const delta::ManifestEntry& b) { return a.path < b.path; });
  return manifest;
}

Result<std::uint64_t> FilesActivation::AvailableBytes() {
  // New files are staged beside the live ones: the least space of their directories.
  std::set<std::string> dirs;
  for (const auto& f : files_) dirs.insert(DirName(f));
  std::uint64_t least = UINT64_MAX;
  for (const auto& d : dirs) {
    QP_ASSIGN_OR_RETURN(SpaceInfo space, env_->StatFs(d));
    least = std::min(least, space.available_bytes);
  }
  return least;
}

Status FilesActivation::CleanStaging() {
  // What earlier agents staged in the work directory (a view of the live files and the
  // patched tree), should one have stopped mid-install before an upgrade.
  QP_RETURN_IF_ERROR(RemoveTree(env_, JoinPath(work_dir_, "view")));
  QP_RETURN_IF_ERROR(RemoveTree(env_, JoinPath(work_dir_, "staged")));
  QP_ASSIGN_OR_RETURN(auto names, env_->ListDir(work_dir_));
  for (const auto& name : names) {
    if (name.rfind(BaseName(PartialTreePrefix(JoinPath(work_dir_, "staged"))), 0) == 0) {
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
  for (const auto& f : files_) {
    QP_ASSIGN_OR_RETURN(FileInfo info, env_->Stat(f));
    if (info.type != FileType::kRegular) {
      return Error(ErrorCode::kInvalidArgument, f + ": not a regular file");
    }
  }
  // Each live file is read once: hashed (its manifest entry), and kept in memory when the
  // patch reads it as a source (up to hold_bytes_; past that it is read again). Changed
  // files are written once, beside themselves.
  // The result digest is the signed one: Store::Install checked it before staging.
  delta::SourceTree source;
  source.name = "the component's files";
  delta::HeldSources held(delta::PatchSources(header), hold_bytes_);
  QP_ASSIGN_OR_RETURN(source.manifest, LiveManifest(&held));
  source.held = &held;
  source.locate = [](const std::string& path) { return "/" + path; };
  SiblingSink sink(env_, [](const std::string& f) { return Sibling(f, ".qp-new"); });
  QP_RETURN_IF_ERROR(delta::ApplyPatchFrom(env_, source, patch, header, sink));
  journal->changed = sink.changed();
  std::sort(journal->changed.begin(), journal->changed.end());
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
