// Activation for a component that owns its root directory (see activation.h).
#pragma once

#include "store/activation.h"

namespace qp::store {

class DirectoryActivation final : public Activation {
 public:
  // Up to `hold_bytes` of the live files the patch reads stay in memory between their
  // hashing and the patch (delta::HeldSources), so each is read from disk once.
  DirectoryActivation(Env* env, std::string root, std::uint64_t hold_bytes = 0);

  Result<Sha256Digest> LiveDigest() override;
  Result<std::uint64_t> AvailableBytes() override;
  Status CleanStaging() override;
  Status Stage(RandomAccessFile& patch, const delta::PatchHeader& header,
               Journal* journal) override;
  Status Activate(const Journal& journal) override;
  Status Undo(const Journal& journal) override;
  Status Commit(const Journal& journal) override;
  Status PrepareRestore(Journal* journal) override;
  Status Restore(const Journal& journal) override;
  Result<bool> HasPreviousCopy() override;
  Status DropPrevious() override;
  std::vector<std::pair<std::string, std::string>> MappedPathAliases() const override;

 private:
  // Whether the directory with `inode` is the live root (the swap happened).
  Result<bool> IsLive(std::uint64_t inode);

  Env* env_;
  std::uint64_t hold_bytes_;
  std::string root_, parent_, staging_, previous_;
};

}  // namespace qp::store
