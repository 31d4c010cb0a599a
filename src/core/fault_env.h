// An Env for fault and crash tests, in the style of leveldb's FaultInjectionTestEnv.
//
// It forwards to a base Env and numbers every operation (each Append, Sync, Close, Rename,
// ... counts as one, starting at 1). A test can make operation N fail with an errno
// (ENOSPC, EIO), or simulate a crash at operation N: that operation does not happen, it
// and every later one return kCrashed, and DropUnsyncedChanges() then undoes what a real
// power cut could lose: file data written since the file's last Sync(), and directory
// entries created, renamed or removed since their directory's last SyncDir(). After that
// ClearCrash() lets recovery code run on the same env.
//
// Directory changes are undone by keeping hard links of what a rename or unlink replaced
// in `shadow_dir`, which must be on the same file system as the paths under test.
// Not thread-safe: crash tests drive it from one thread.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/env.h"

namespace qp {

class FaultInjectionEnv final : public Env {
 public:
  FaultInjectionEnv(Env* base, std::string shadow_dir);
  ~FaultInjectionEnv() override;

  // Operation number `n` (1-based, counted from now on) fails with errno `err`, once.
  void FailOperation(int n, int err);
  // Every operation from number `n` on that can need space (create, append, fsync of a
  // file, close, mkdir, link, symlink, rename to a new name, chmod) fails with errno `err`:
  // a disk that stays full. Removals, renames over an existing name, exchanges and
  // directory fsyncs still work, as they do on a full ext4 (they allocate nothing).
  void FailFromOperation(int n, int err);
  // Operation number `n` does not happen and execution is considered stopped there.
  void CrashAtOperation(int n);
  // Operations performed (or attempted) since construction or the last ResetCounter().
  int operation_count() const { return count_; }
  void ResetCounter() { count_ = 0; }
  bool crashed() const { return crashed_; }

  // Descriptions of changes that a crash now could lose, e.g.
  // "rename a/x.tmp -> a/x (may be lost: a not synced)". Empty when all is durable.
  std::vector<std::string> UnsyncedChanges() const;
  // True when the directory entry at `path` was changed and its directory is not synced.
  bool MayBeLost(const std::string& path) const;

  // Undoes everything UnsyncedChanges() lists, newest first, on the base env.
  Status DropUnsyncedChanges();
  // Re-enables operations after a simulated crash; clears pending faults.
  void ClearCrash();

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path, CreateMode mode,
                                                        mode_t permissions) override;
  Result<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(const std::string& path) override;
  Status Rename(const std::string& from, const std::string& to) override;
  Status RenameExchange(const std::string& a, const std::string& b) override;
  Status Link(const std::string& existing, const std::string& new_path) override;
  Status Symlink(const std::string& target, const std::string& link_path) override;
  Result<std::string> ReadLink(const std::string& path) override;
  Status Unlink(const std::string& path) override;
  Status MakeDir(const std::string& path, mode_t permissions) override;
  Status RemoveDir(const std::string& path) override;
  Status SyncDir(const std::string& path) override;
  Status Chmod(const std::string& path, mode_t permissions) override;
  Result<FileInfo> Stat(const std::string& path) override;
  Result<SpaceInfo> StatFs(const std::string& path) override;
  Result<std::vector<std::string>> ListDir(const std::string& path) override;
  Result<std::unique_ptr<FileLock>> TryLockFile(const std::string& path) override;

 private:
  friend class FaultWritableFile;

  enum class OpKind { kCreate, kMkdir, kRename, kExchange, kUnlink, kRmdir };
  struct DirOp {
    OpKind kind;
    std::string path;                  // created / removed / rename destination / exchange a
    std::string from;                  // rename source / exchange b
    std::optional<std::string> saved;  // shadow link of what was replaced or removed
    mode_t mode = 0755;
  };

  // Counts one operation; returns the error it must fail with, if any.
  std::optional<Error> Gate(const std::string& what, bool allocates_nothing = false);
  std::string SaveShadow(const std::string& path);
  void OnFileSynced(const std::string& path, std::uint64_t size);
  void MoveTracking(const std::string& from, const std::string& to);

  Env* base_;
  std::string shadow_dir_;
  int shadow_seq_ = 0;
  int count_ = 0;
  bool crashed_ = false;
  int fail_at_ = -1, fail_from_ = -1, fail_errno_ = 0, crash_at_ = -1;
  // Per file path: bytes known durable (written and synced), and bytes written.
  struct FileState {
    std::uint64_t synced = 0;
    std::uint64_t written = 0;
  };
  std::map<std::string, FileState> files_;
  std::vector<DirOp> dir_ops_;
};

}  // namespace qp
