#include "delta/gzip_member.h"

#include "core/memory_file.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>

extern char** environ;

namespace qp::delta {
namespace {

constexpr std::size_t kBuffer = 64 * 1024;

// Closes a descriptor once.
class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_;
};

const char* FindGzip() {
  for (const char* path : {"/usr/bin/gzip", "/bin/gzip"}) {
    if (::access(path, X_OK) == 0) return path;
  }
  return nullptr;
}

}  // namespace

bool LooksGzipped(std::span<const std::uint8_t> data) {
  return data.size() >= 18 && data[0] == 0x1f && data[1] == 0x8b && data[2] == 8;
}

Result<std::vector<std::uint8_t>> Gunzip(std::span<const std::uint8_t> data, std::uint64_t limit) {
  if (!LooksGzipped(data)) return Error(ErrorCode::kCorrupt, "not a gzip file");
  z_stream z{};
  if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
    return Error(ErrorCode::kInternal, "zlib init failed");
  std::vector<std::uint8_t> out;
  z.next_in = const_cast<Bytef*>(data.data());  // zlib's API is not const-correct
  z.avail_in = static_cast<uInt>(std::min<std::size_t>(data.size(), UINT32_MAX));
  int rc = Z_OK;
  while (rc == Z_OK) {
    std::size_t used = out.size();
    if (used >= limit + 1) break;
    out.resize(used + kBuffer);
    z.next_out = out.data() + used;
    z.avail_out = kBuffer;
    rc = inflate(&z, Z_NO_FLUSH);
    out.resize(used + kBuffer - z.avail_out);
    if (rc == Z_BUF_ERROR && z.avail_in == 0) break;  // input ended inside the member
  }
  const std::size_t consumed = data.size() - z.avail_in;
  inflateEnd(&z);
  if (out.size() > limit) {
    return Error(ErrorCode::kTooLarge,
                 "gzip content larger than " + std::to_string(limit) + " bytes");
  }
  if (rc != Z_STREAM_END) return Error(ErrorCode::kCorrupt, "damaged or truncated gzip data");
  if (consumed != data.size()) return Error(ErrorCode::kCorrupt, "data after the gzip member");
  return out;
}

Result<std::vector<std::uint8_t>> GzipBest(std::span<const std::uint8_t> content) {
  const char* gzip = FindGzip();
  if (gzip == nullptr) {
    return Error(ErrorCode::kNotFound, "gzip is not installed (/usr/bin/gzip or /bin/gzip)");
  }
  // A socket for stdin, so that writing to a gzip that died fails with EPIPE instead of
  // raising SIGPIPE in this process; a pipe for stdout.
  int in_pair[2], out_pipe[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in_pair) != 0) {
    return Error(ErrorCode::kIo, std::string("socketpair: ") + std::strerror(errno));
  }
  Fd in_parent(in_pair[0]), in_child(in_pair[1]);
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    return Error(ErrorCode::kIo, std::string("pipe: ") + std::strerror(errno));
  }
  Fd out_parent(out_pipe[0]), out_child(out_pipe[1]);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in_child.get(), 0);
  posix_spawn_file_actions_adddup2(&actions, out_child.get(), 1);
  // A fixed, minimal environment: GZIP= options in ours must not change the output.
  char arg0[] = "gzip", arg1[] = "-9n", arg2[] = "-c";
  char* argv[] = {arg0, arg1, arg2, nullptr};
  char env0[] = "PATH=/usr/bin:/bin", env1[] = "LC_ALL=C";
  char* envp[] = {env0, env1, nullptr};
  pid_t pid = -1;
  int rc = posix_spawn(&pid, gzip, &actions, nullptr, argv, envp);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return Error(ErrorCode::kIo, std::string("cannot run gzip: ") + std::strerror(rc));
  in_child.Reset();
  out_child.Reset();

  bool write_failed = false;
  std::thread writer([&] {
    std::size_t done = 0;
    while (done < content.size()) {
      ssize_t n = ::send(in_parent.get(), content.data() + done,
                         std::min(kBuffer, content.size() - done), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        write_failed = true;
        break;
      }
      done += static_cast<std::size_t>(n);
    }
    ::shutdown(in_parent.get(), SHUT_WR);
  });
  std::vector<std::uint8_t> out;
  bool read_failed = false;
  for (;;) {
    std::size_t used = out.size();
    out.resize(used + kBuffer);
    ssize_t n = ::read(out_parent.get(), out.data() + used, kBuffer);
    if (n < 0 && errno == EINTR) {
      out.resize(used);
      continue;
    }
    out.resize(used + static_cast<std::size_t>(std::max<ssize_t>(n, 0)));
    if (n < 0) read_failed = true;
    if (n <= 0) break;
    // Deflate never grows data by more than a little; more than this is not gzip's output.
    if (out.size() > content.size() + content.size() / 8 + 1024) {
      read_failed = true;
      break;
    }
  }
  out_parent.Reset();  // a gzip still writing now gets EPIPE and ends
  writer.join();
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (write_failed || read_failed || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Error(ErrorCode::kIo, "gzip -9n failed (exit status " +
                                     std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) +
                                     ")");
  }
  return out;
}

Result<std::vector<std::uint8_t>> DiffGzipped(std::span<const std::uint8_t> old_gz,
                                              std::span<const std::uint8_t> new_gz,
                                              const FileDiffOptions& options) {
  if (!LooksGzipped(old_gz) || !LooksGzipped(new_gz)) {
    return Error(ErrorCode::kUnsupported, "not gzip files");
  }
  auto old_raw = Gunzip(old_gz, kMaxGzipContent);
  auto new_raw = Gunzip(new_gz, kMaxGzipContent);
  if (!old_raw.ok() || !new_raw.ok())
    return Error(ErrorCode::kUnsupported, "not usable gzip files");
  auto again = GzipBest(*new_raw);
  if (!again.ok() || *again != std::vector<std::uint8_t>(new_gz.begin(), new_gz.end())) {
    return Error(ErrorCode::kUnsupported, "gzip -9n does not reproduce the new file");
  }
  return DiffFile(*old_raw, *new_raw, options);
}

Status ApplyGzipDelta(RandomAccessFile& old_gz, RandomAccessFile& patch, std::uint64_t offset,
                      std::uint64_t length, WritableFile& out) {
  if (old_gz.Size() > kMaxGzipContent) {
    return Error(ErrorCode::kCorrupt,
                 "gzip delta source larger than " + std::to_string(kMaxGzipContent) + " bytes");
  }
  std::vector<std::uint8_t> old_data(static_cast<std::size_t>(old_gz.Size()));
  QP_ASSIGN_OR_RETURN(std::size_t n, old_gz.ReadAt(0, old_data));
  if (n != old_data.size()) return Error(ErrorCode::kIo, "gzip delta source changed while read");
  auto old_raw = Gunzip(old_data, kMaxGzipContent);
  if (!old_raw.ok()) return old_raw.error().WithContext("gzip delta source");
  std::vector<std::uint8_t> new_raw;
  MemoryFile old_file(*old_raw);
  VectorSink sink(&new_raw, kMaxGzipContent);
  QP_ASSIGN_OR_RETURN(FileApplyResult applied,
                      ApplyFileDelta(old_file, patch, offset, length, sink));
  (void)applied;  // the recompressed file is what the manifest checks
  QP_ASSIGN_OR_RETURN(auto gz, GzipBest(new_raw));
  return out.Append(gz);
}

}  // namespace qp::delta
