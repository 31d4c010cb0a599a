// How a component's new tree becomes live, in its two forms:
//  - a component that owns its root directory R: the new tree is staged as R.qp-staging
//    beside it and swapped in with renameat2(RENAME_EXCHANGE); the replaced tree becomes
//    the rollback copy R.qp-previous;
//  - files in shared directories: each changed file f is staged as .f.qp-new beside it,
//    the old one kept as the hard link .f.qp-old, then replaced by rename; on commit the
//    old ones become the rollback copies .f.qp-previous.
// Every step is idempotent and driven by the Journal, so recovery can finish or undo it
// after a crash at any instant. All file-system access goes through the Env.
#pragma once

#include <memory>
#include <string>

#include "core/env.h"
#include "delta/qpatch_format.h"
#include "store/component_config.h"
#include "store/store_state.h"

namespace qp::store {

class Activation {
 public:
  virtual ~Activation() = default;

  // Digest of the live tree (as delta::ManifestDigest; shared files are seen as a tree of
  // their paths without the leading '/').
  virtual Result<Sha256Digest> LiveDigest() = 0;
  // Bytes of free space where staged files are written, for the space check.
  virtual Result<std::uint64_t> AvailableBytes() = 0;
  // Removes whatever a staging left behind. Idempotent.
  virtual Status CleanStaging() = 0;
  // Builds and verifies the new tree (journal->to.digest) from the live one and the patch;
  // records in `journal` what activation needs (marker inode, changed files).
  virtual Status Stage(RandomAccessFile& patch, const delta::PatchHeader& header,
                       Journal* journal) = 0;
  // Makes the staged tree live.
  virtual Status Activate(const Journal& journal) = 0;
  // From any install phase before "committing": the old tree is live again and the staged
  // one is gone. Idempotent.
  virtual Status Undo(const Journal& journal) = 0;
  // The replaced tree becomes the rollback copy (replacing the older one). Idempotent.
  virtual Status Commit(const Journal& journal) = 0;
  // Remove: records what Restore needs (before the journal is written).
  virtual Status PrepareRestore(Journal* journal) = 0;
  // Remove: the rollback copy becomes live; the tree it replaces is deleted. Idempotent.
  virtual Status Restore(const Journal& journal) = 0;
  // Whether a rollback copy exists on disk.
  virtual Result<bool> HasPreviousCopy() = 0;
  // Deletes the rollback copy (supersession). Idempotent.
  virtual Status DropPrevious() = 0;
  // Where processes may map the component's files from, for restart detection: pairs of
  // (path prefix seen in /proc/PID/maps, the live path it corresponds to).
  virtual std::vector<std::pair<std::string, std::string>> MappedPathAliases() const = 0;
};

// `work_dir`: the component's directory in the store's state directory.
// `hold_bytes`: StoreOptions::held_source_bytes.
std::unique_ptr<Activation> NewActivation(Env* env, const ComponentConfig& config,
                                          const std::string& work_dir, std::uint64_t hold_bytes);

}  // namespace qp::store
