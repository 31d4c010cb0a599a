// The real Env over POSIX and Linux system calls.
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "core/env.h"

namespace qp {
namespace {

class PosixWritableFile final : public WritableFile {
 public:
  PosixWritableFile(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~PosixWritableFile() override {
    if (fd_ >= 0) ::close(fd_);
  }

  Status Append(std::span<const std::uint8_t> data) override {
    const std::uint8_t* p = data.data();
    std::size_t left = data.size();
    while (left > 0) {
      ssize_t n = ::write(fd_, p, left);
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoError(errno, "write " + path_);
      }
      p += n;
      left -= static_cast<std::size_t>(n);
    }
    written_ += data.size();
    if (written_ - started_ >= kWriteBehind) {
      // Start writing what is there back now, without waiting: the disk works while the
      // producer computes the rest, and Sync waits only for the tail. Advisory: a failure
      // here is seen by Sync.
      ::sync_file_range(fd_, static_cast<off_t>(started_), static_cast<off_t>(written_ - started_),
                        SYNC_FILE_RANGE_WRITE);
      started_ = written_;
    }
    return OkStatus();
  }

  Status Sync() override {
    if (::fsync(fd_) != 0) return ErrnoError(errno, "fsync " + path_);
    return OkStatus();
  }

  Status Close() override {
    if (fd_ < 0) return Error(ErrorCode::kInternal, "close of closed file " + path_);
    int rc = ::close(fd_);
    fd_ = -1;
    if (rc != 0) return ErrnoError(errno, "close " + path_);
    return OkStatus();
  }

 private:
  static constexpr std::uint64_t kWriteBehind = 1 << 20;
  int fd_;
  std::string path_;
  std::uint64_t written_ = 0, started_ = 0;  // appended; handed to writeback
};

class PosixRandomAccessFile final : public RandomAccessFile {
 public:
  PosixRandomAccessFile(int fd, std::string path, std::uint64_t size)
      : fd_(fd), path_(std::move(path)), size_(size) {}
  ~PosixRandomAccessFile() override {
    if (map_ != nullptr) ::munmap(map_, static_cast<std::size_t>(size_));
    ::close(fd_);
  }

  Result<std::size_t> ReadAt(std::uint64_t offset, std::span<std::uint8_t> buf) override {
    std::size_t done = 0;
    while (done < buf.size()) {
      ssize_t n =
          ::pread(fd_, buf.data() + done, buf.size() - done, static_cast<off_t>(offset + done));
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoError(errno, "read " + path_);
      }
      if (n == 0) break;
      done += static_cast<std::size_t>(n);
    }
    return done;
  }
  std::uint64_t Size() const override { return size_; }
  Result<std::span<const std::uint8_t>> Map() override {
    if (map_ == nullptr && size_ > 0) {
      if (size_ > SIZE_MAX) return Error(ErrorCode::kTooLarge, "map " + path_ + ": too large");
      // Populated at once: one call instead of a fault per page, and the file is about to
      // be read whole anyway.
      void* p = ::mmap(nullptr, static_cast<std::size_t>(size_), PROT_READ,
                       MAP_PRIVATE | MAP_POPULATE, fd_, 0);
      if (p == MAP_FAILED) return ErrnoError(errno, "map " + path_);
      map_ = p;
      // Shrunk since it was opened: its end is not there to read.
      struct stat st {};
      if (::fstat(fd_, &st) != 0 || static_cast<std::uint64_t>(st.st_size) < size_) {
        ::munmap(map_, static_cast<std::size_t>(size_));
        map_ = nullptr;
        return Error(ErrorCode::kIo, "map " + path_ + ": the file shrank while it was opened");
      }
    }
    return std::span<const std::uint8_t>(static_cast<const std::uint8_t*>(map_),
                                         static_cast<std::size_t>(size_));
  }

 private:
  int fd_;
  std::string path_;
  std::uint64_t size_;
  void* map_ = nullptr;
};

class PosixEnv final : public Env {
 public:
  Result<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path, CreateMode mode,
                                                        mode_t permissions) override {
    // Never through a symlink planted at the name (O_EXCL alone refuses one; O_NOFOLLOW
    // covers truncating and appending).
    int flags = O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW;
    flags |= mode == CreateMode::kExclusive ? O_EXCL
             : mode == CreateMode::kAppend  ? O_APPEND
                                            : O_TRUNC;
    int fd = ::open(path.c_str(), flags, permissions);
    if (fd < 0) return ErrnoError(errno, "create " + path);
    return std::unique_ptr<WritableFile>(new PosixWritableFile(fd, path));
  }

  Result<std::unique_ptr<RandomAccessFile>> NewRandomAccessFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoError(errno, "open " + path);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      int err = errno;
      ::close(fd);
      return ErrnoError(err, "stat " + path);
    }
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      return Error(ErrorCode::kInvalidArgument, "open " + path + ": not a regular file");
    }
    return std::unique_ptr<RandomAccessFile>(
        new PosixRandomAccessFile(fd, path, static_cast<std::uint64_t>(st.st_size)));
  }

  Status Rename(const std::string& from, const std::string& to) override {
    if (::rename(from.c_str(), to.c_str()) != 0) {
      return ErrnoError(errno, "rename " + from + " -> " + to);
    }
    return OkStatus();
  }

  Status RenameExchange(const std::string& a, const std::string& b) override {
    if (::renameat2(AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), RENAME_EXCHANGE) != 0) {
      return ErrnoError(errno, "exchange " + a + " <-> " + b);
    }
    return OkStatus();
  }

  Status Link(const std::string& existing, const std::string& new_path) override {
    if (::link(existing.c_str(), new_path.c_str()) != 0) {
      return ErrnoError(errno, "link " + existing + " -> " + new_path);
    }
    return OkStatus();
  }

  Status Symlink(const std::string& target, const std::string& link_path) override {
    if (::symlink(target.c_str(), link_path.c_str()) != 0) {
      return ErrnoError(errno, "symlink " + link_path);
    }
    return OkStatus();
  }

  Result<std::string> ReadLink(const std::string& path) override {
    std::string buf(4096, '\0');
    ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
    if (n < 0) return ErrnoError(errno, "readlink " + path);
    if (static_cast<std::size_t>(n) == buf.size()) {
      return Error(ErrorCode::kTooLarge, "readlink " + path + ": target too long");
    }
    buf.resize(static_cast<std::size_t>(n));
    return buf;
  }

  Status Unlink(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return ErrnoError(errno, "unlink " + path);
    return OkStatus();
  }

  Status MakeDir(const std::string& path, mode_t permissions) override {
    if (::mkdir(path.c_str(), permissions) != 0) return ErrnoError(errno, "mkdir " + path);
    return OkStatus();
  }

  Status RemoveDir(const std::string& path) override {
    if (::rmdir(path.c_str()) != 0) return ErrnoError(errno, "rmdir " + path);
    return OkStatus();
  }

  Status SyncDir(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return ErrnoError(errno, "open directory " + path);
    int rc = ::fsync(fd);
    int err = errno;
    ::close(fd);
    if (rc != 0) return ErrnoError(err, "fsync directory " + path);
    return OkStatus();
  }

  Status Chmod(const std::string& path, mode_t permissions) override {
    if (::chmod(path.c_str(), permissions) != 0) return ErrnoError(errno, "chmod " + path);
    return OkStatus();
  }

  Result<FileInfo> Stat(const std::string& path) override {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return ErrnoError(errno, "stat " + path);
    FileInfo info;
    if (S_ISREG(st.st_mode))
      info.type = FileType::kRegular;
    else if (S_ISDIR(st.st_mode))
      info.type = FileType::kDirectory;
    else if (S_ISLNK(st.st_mode))
      info.type = FileType::kSymlink;
    info.size = static_cast<std::uint64_t>(st.st_size);
    info.mode = st.st_mode & 07777;
    info.device = st.st_dev;
    info.inode = st.st_ino;
    info.links = st.st_nlink;
    return info;
  }

  Result<SpaceInfo> StatFs(const std::string& path) override {
    struct statvfs sv {};
    if (::statvfs(path.c_str(), &sv) != 0) return ErrnoError(errno, "statvfs " + path);
    SpaceInfo info;
    info.available_bytes = static_cast<std::uint64_t>(sv.f_bavail) * sv.f_frsize;
    info.available_inodes = sv.f_favail;
    return info;
  }

  Result<std::vector<std::string>> ListDir(const std::string& path) override {
    DIR* dir = ::opendir(path.c_str());
    if (dir == nullptr) return ErrnoError(errno, "opendir " + path);
    std::vector<std::string> names;
    errno = 0;
    while (struct dirent* e = ::readdir(dir)) {
      std::string name = e->d_name;
      if (name != "." && name != "..") names.push_back(std::move(name));
    }
    int err = errno;
    ::closedir(dir);
    if (err != 0) return ErrnoError(err, "readdir " + path);
    std::sort(names.begin(), names.end());
    return names;
  }

  Result<std::unique_ptr<FileLock>> TryLockFile(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
    if (fd < 0) return ErrnoError(errno, "open " + path);
    struct flock lock {};
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    if (::fcntl(fd, F_SETLK, &lock) == 0) return std::unique_ptr<FileLock>(new PosixFileLock(fd));
    int err = errno;
    if (err != EACCES && err != EAGAIN) {
      ::close(fd);
      return ErrnoError(err, "lock " + path);
    }
    struct flock holder {};
    holder.l_type = F_WRLCK;
    holder.l_whence = SEEK_SET;
    std::string who = ::fcntl(fd, F_GETLK, &holder) == 0 && holder.l_type != F_UNLCK
                          ? " by pid " + std::to_string(holder.l_pid)
                          : "";
    ::close(fd);
    return Error(ErrorCode::kFailedPrecondition, path + " is locked" + who);
  }

 private:
  class PosixFileLock final : public FileLock {
   public:
    explicit PosixFileLock(int fd) : fd_(fd) {}
    ~PosixFileLock() override { ::close(fd_); }  // closing releases the process's lock

   private:
    int fd_;
  };
};

}  // namespace

Env* Env::Default() {
  static PosixEnv* env = new PosixEnv();
  return env;
}

std::string DirName(const std::string& path) {
  auto pos = path.find_last_of('/');
  if (pos == std::string::npos) return ".";
  if (pos == 0) return "/";
  return path.substr(0, pos);
}

std::string BaseName(const std::string& path) {
  auto pos = path.find_last_of('/');
  return pos == std::string::npos ? path : path.substr(pos + 1);
}

std::string JoinPath(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (a.back() == '/') return a + b;
  return a + "/" + b;
}

}  // namespace qp
