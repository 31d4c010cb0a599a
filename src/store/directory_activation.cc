// Activation of a component that owns its root directory: stage beside, swap with
// renameat2(RENAME_EXCHANGE), keep the replaced tree as the rollback copy.
#include "store/directory_activation.h"

#include "core/durable_file.h"
#include "core/tree_writer.h"
#include "delta/tree_manifest.h"
#include "delta/tree_patch.h"

namespace qp::store {

DirectoryActivation::DirectoryActivation(Env* env, std::string root, std::uint64_t hold_bytes)
    : env_(env),
      hold_bytes_(hold_bytes),
      root_(std::move(root)),
      parent_(DirName(root_)),
      staging_(root_ + ".qp-staging"),
      previous_(root_ + ".qp-previous") {}

Result<Sha256Digest> DirectoryActivation::LiveDigest() {
  QP_ASSIGN_OR_RETURN(auto manifest, delta::ScanTree(env_, root_));
  return delta::ManifestDigest(manifest);
}

Result<std::uint64_t> DirectoryActivation::AvailableBytes() {
  QP_ASSIGN_OR_RETURN(SpaceInfo space, env_->StatFs(parent_));
  return space.available_bytes;
}

Status DirectoryActivation::CleanStaging() {
  // The staged tree, and what an interrupted patch application left (NAME.qp-partial-PID).
  QP_RETURN_IF_ERROR(RemoveTree(env_, staging_));
  QP_ASSIGN_OR_RETURN(auto names, env_->ListDir(parent_));
  std::string partial = BaseName(PartialTreePrefix(staging_));
  for (const auto& name : names) {
    if (name.rfind(partial, 0) == 0) {
      QP_RETURN_IF_ERROR(RemoveTree(env_, JoinPath(parent_, name)));
    }
  }
  return env_->SyncDir(parent_);
}

Status DirectoryActivation::Stage(RandomAccessFile& patch, const delta::PatchHeader& header,
                                  Journal* journal) {
  NewTreeOptions options;
  options.link_files = true;  // unchanged files are hard links of the live ones
  QP_RETURN_IF_ERROR(WriteNewTree(env_, staging_, options, [&](TreeSink& sink) {
    return delta::ApplyPatchTo(env_, root_, patch, header, sink, hold_bytes_);
  }));
  QP_ASSIGN_OR_RETURN(FileInfo live, env_->Stat(root_));
  QP_RETURN_IF_ERROR(env_->Chmod(staging_, live.mode));
  // Not read back: ApplyPatchTo checked every file it wrote (hashed as it was written),
  // every link and every unchanged file (hashed before it was linked) against the patch's
  // manifest, and the manifest against the result digest, which the store has checked
  // against the improvement's signed digest (Store::Install, before staging). The staging
  // directory was empty, so nothing else is in it.
  QP_ASSIGN_OR_RETURN(FileInfo staged, env_->Stat(staging_));
  QP_RETURN_IF_ERROR(env_->SyncDir(staging_));
  QP_RETURN_IF_ERROR(env_->SyncDir(parent_));
  journal->marker_inode = staged.inode;
  return OkStatus();
}

Result<bool> DirectoryActivation::IsLive(std::uint64_t inode) {
  QP_ASSIGN_OR_RETURN(FileInfo live, env_->Stat(root_));
  return live.inode == inode;
}

Status DirectoryActivation::Activate(const Journal& journal) {
  QP_ASSIGN_OR_RETURN(bool done, IsLive(journal.marker_inode));
  if (!done) QP_RETURN_IF_ERROR(env_->RenameExchange(staging_, root_));
  return env_->SyncDir(parent_);
}

Status DirectoryActivation::Undo(const Journal& journal) {
  if (journal.marker_inode != 0) {
    QP_ASSIGN_OR_RETURN(bool swapped, IsLive(journal.marker_inode));
    if (swapped) {
      // The staged tree is live and the old one sits in the staging name: swap back.
      QP_RETURN_IF_ERROR(env_->RenameExchange(staging_, root_));
      QP_RETURN_IF_ERROR(env_->SyncDir(parent_));
    }
  }
  return CleanStaging();
}

Status DirectoryActivation::Commit(const Journal& journal) {
  (void)journal;
  auto staged = env_->Stat(staging_);
  if (!staged.ok()) {
    if (staged.error().code() == ErrorCode::kNotFound) return OkStatus();  // done before
    return staged.error();
  }
  QP_RETURN_IF_ERROR(RemoveTree(env_, previous_));
  QP_RETURN_IF_ERROR(env_->Rename(staging_, previous_));
  return env_->SyncDir(parent_);
}

Status DirectoryActivation::PrepareRestore(Journal* journal) {
  QP_ASSIGN_OR_RETURN(FileInfo previous, env_->Stat(previous_));
  journal->marker_inode = previous.inode;
  return OkStatus();
}

Status DirectoryActivation::Restore(const Journal& journal) {
  QP_ASSIGN_OR_RETURN(bool swapped, IsLive(journal.marker_inode));
  if (!swapped) {
    QP_RETURN_IF_ERROR(env_->RenameExchange(previous_, root_));
    QP_RETURN_IF_ERROR(env_->SyncDir(parent_));
  }
  // The removed tree now sits in the rollback copy's name.
  QP_RETURN_IF_ERROR(RemoveTree(env_, previous_));
  return env_->SyncDir(parent_);
}

Result<bool> DirectoryActivation::HasPreviousCopy() {
  auto info = env_->Stat(previous_);
  if (info.ok()) return info->type == FileType::kDirectory;
  if (info.error().code() == ErrorCode::kNotFound) return false;
  return info.error();
}

Status DirectoryActivation::DropPrevious() {
  QP_RETURN_IF_ERROR(RemoveTree(env_, previous_));
  return env_->SyncDir(parent_);
}

std::vector<std::pair<std::string, std::string>> DirectoryActivation::MappedPathAliases() const {
  // A process that mapped a file before the swap sees it under the directory's new name.
  return {
      {root_ + "/", root_ + "/"}, {previous_ + "/", root_ + "/"}, {staging_ + "/", root_ + "/"}};
}

}  // namespace qp::store
