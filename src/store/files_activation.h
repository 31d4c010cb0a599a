// Activation for a component made of files in shared directories (see activation.h).
#pragma once

#include "store/activation.h"

namespace qp::store {

class FilesActivation final : public Activation {
 public:
  // `hold_bytes`: as for DirectoryActivation.
  FilesActivation(Env* env, std::vector<std::string> files, std::string work_dir,
                  std::uint64_t hold_bytes = 0);

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
  // Hidden siblings of a live file: .NAME.qp-new (staged), .qp-old (replaced, in flight),
  // .qp-previous (rollback copy).
  static std::string Sibling(const std::string& file, const char* suffix);
  // The live files as a tree (what the patch applies to), each file hashed (through `held`
  // when given).
  Result<delta::Manifest> LiveManifest(delta::HeldSources* held = nullptr);
  Status SyncDirsOf(const std::vector<std::string>& files);
  Result<bool> Exists(const std::string& path);

  Env* env_;
  std::vector<std::string> files_;  // absolute, sorted
  std::string work_dir_;            // the component's state directory
  std::uint64_t hold_bytes_;
};

}  // namespace qp::store
