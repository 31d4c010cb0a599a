// Test helper: an Env that forwards everything to another and counts the bytes read from
// each path through NewRandomAccessFile, to pin how often an operation reads (hashes,
// applies) each file. Opening is not thread-safe; a file opened may be read from two
// threads (the patch, by the applier and its gzip lane).
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/env.h"

namespace qp {

class ReadCountingEnv final : public Env {
 public:
  explicit ReadCountingEnv(Env* base) : base_(base) {}

  // Bytes read from `path` since the last Reset().
  std::uint64_t BytesRead(const std::string& path) const;
  // Bytes read from every path since the last Reset().
  std::uint64_t TotalBytesRead() const;
  // Every path opened for reading since the last Reset(), sorted.
  std::vector<std::string> PathsRead() const;
  void Reset() { read_.clear(); }

  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path, CreateMode mode,
                                                        mode_t permissions) override {
    return base_->NewWritableFile(path, mode, permissions);
  }
  Result<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(const std::string& path) override;
  Status Rename(const std::string& from, const std::string& to) override {
    return base_->Rename(from, to);
  }
  Status RenameExchange(const std::string& a, const std::string& b) override {
    return base_->RenameExchange(a, b);
  }
  Status Link(const std::string& existing, const std::string& new_path) override {
    return base_->Link(existing, new_path);
  }
  Status Symlink(const std::string& target, const std::string& link_path) override {
    return base_->Symlink(target, link_path);
  }
  Result<std::string> ReadLink(const std::string& path) override { return base_->ReadLink(path); }
  Status Unlink(const std::string& path) override { return base_->Unlink(path); }
  Status MakeDir(const std::string& path, mode_t permissions) override {
    return base_->MakeDir(path, permissions);
  }
  Status RemoveDir(const std::string& path) override { return base_->RemoveDir(path); }
  Status SyncDir(const std::string& path) override { return base_->SyncDir(path); }
  Status Chmod(const std::string& path, mode_t permissions) override {
    return base_->Chmod(path, permissions);
  }
  Result<FileInfo> Stat(const std::string& path) override { return base_->Stat(path); }
  Result<SpaceInfo> StatFs(const std::string& path) override { return base_->StatFs(path); }
  Result<std::unique_ptr<FileLock>> TryLockFile(const std::string& path) override {
    return base_->TryLockFile(path);
  }
  Result<std::vector<std::string>> ListDir(const std::string& path) override {
    return base_->ListDir(path);
  }

 private:
  Env* base_;
  std::map<std::string, std::atomic<std::uint64_t>> read_;
};

}  // namespace qp
