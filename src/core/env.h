// The file-system seam. Every part that touches files does it through an Env, so that
// tests can inject faults (ENOSPC, EIO) and simulated crashes at any single operation
// (see fault_env.h). Paths are plain strings. All methods are thread-safe in the posix Env.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/result.h"

namespace qp {

// A file being written sequentially. Data is durable only after Sync() returns ok.
class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual Status Append(std::span<const std::uint8_t> data) = 0;
  // fsync(2): data and size on stable storage.
  virtual Status Sync() = 0;
  // Closes the descriptor; further calls are errors. Called by the destructor if needed.
  virtual Status Close() = 0;
};

// A file read at arbitrary offsets.
class RandomAccessFile {
 public:
  virtual ~RandomAccessFile() = default;
  // Reads up to buf.size() bytes at offset; returns the count (0 at end of file). Short
  // reads happen only at end of file.
  virtual Result<std::size_t> ReadAt(std::uint64_t offset, std::span<std::uint8_t> buf) = 0;
  virtual std::uint64_t Size() const = 0;
  // The whole file (Size() bytes) in memory, read-only, valid while this object lives:
  // mapped where the file allows it (no copy, and no fresh memory: the page cache's
  // pages), kUnsupported otherwise. A mapping is not a snapshot: what another process
  // writes into the file shows through, and touching it after the file was truncated
  // kills the process (SIGBUS). Only for files that nothing else writes meanwhile.
  virtual Result<std::span<const std::uint8_t>> Map() {
    return Error(ErrorCode::kUnsupported, "this file cannot be mapped");
  }
};

enum class FileType { kRegular, kDirectory, kSymlink, kOther };

struct FileInfo {
  FileType type = FileType::kOther;
  std::uint64_t size = 0;
  std::uint32_t mode = 0;  // permission bits only (07777)
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  std::uint64_t links = 0;
};

struct SpaceInfo {
  std::uint64_t available_bytes = 0;  // for an unprivileged user
  std::uint64_t available_inodes = 0;
};

enum class CreateMode {
  kTruncate,   // create or truncate
  kExclusive,  // O_EXCL: fail with kAlreadyExists if the path exists
  kAppend,     // create, or keep what is there and write after it (a resumed download)
};

// A held lock; released when destroyed.
class FileLock {
 public:
  virtual ~FileLock() = default;
};

class Env {
 public:
  virtual ~Env() = default;

  virtual Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path,
                                                                CreateMode mode,
                                                                mode_t permissions = 0644) = 0;
  virtual Result<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(
      const std::string& path) = 0;

  // rename(2): replaces `to` atomically.
  virtual Status Rename(const std::string& from, const std::string& to) = 0;
  // renameat2(RENAME_EXCHANGE): swaps two existing paths atomically.
  virtual Status RenameExchange(const std::string& a, const std::string& b) = 0;
  // link(2): a second name for an existing file.
  virtual Status Link(const std::string& existing, const std::string& new_path) = 0;
  virtual Status Symlink(const std::string& target, const std::string& link_path) = 0;
  virtual Result<std::string> ReadLink(const std::string& path) = 0;
  virtual Status Unlink(const std::string& path) = 0;
  virtual Status MakeDir(const std::string& path, mode_t permissions = 0755) = 0;
  virtual Status RemoveDir(const std::string& path) = 0;
  // fsync of a directory: makes the creations, renames and removals inside it durable.
  virtual Status SyncDir(const std::string& path) = 0;
  virtual Status Chmod(const std::string& path, mode_t permissions) = 0;
  // lstat(2): does not follow a final symlink. kNotFound when absent.
  virtual Result<FileInfo> Stat(const std::string& path) = 0;
  virtual Result<SpaceInfo> StatFs(const std::string& path) = 0;
  // Entry names of a directory (no "." or ".."), sorted bytewise.
  virtual Result<std::vector<std::string>> ListDir(const std::string& path) = 0;

  // Takes an exclusive fcntl (POSIX record) lock on the whole of `path` (created 0640 when
  // missing), as dpkg and apt lock their database, without waiting. kFailedPrecondition
  // naming the holder's pid when another process holds it. Locks are per process: this
  // process taking it twice does not conflict.
  virtual Result<std::unique_ptr<FileLock>> TryLockFile(const std::string& path) = 0;

  // The process-wide posix implementation.
  static Env* Default();
};

// The directory part of a path ("a/b/c" -> "a/b", "c" -> ".", "/c" -> "/").
std::string DirName(const std::string& path);
// The last component of a path ("a/b/c" -> "c").
std::string BaseName(const std::string& path);
// Joins two paths with one '/'.
std::string JoinPath(const std::string& a, const std::string& b);

}  // namespace qp
