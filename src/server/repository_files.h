// Serving the repository's static files: no path escapes (every segment checked, symlinks
// resolved and kept inside the repository), ETag and If-None-Match, Cache-Control that
// fits each file (timestamp.json short-lived; versioned metadata and hash-named targets
// immutable), HEAD, and single byte ranges for resumed downloads. Files up to
// kMaxCachedBytes are cached in memory and revalidated with one stat per request; larger
// ones are handed over as an open descriptor, for the caller to stream in pieces, so a
// response never holds more than a piece of a big file in memory. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>

namespace qp::server {

// An open repository file, read in pieces by whoever streams it; closed with the last
// reference.
class OpenFile {
 public:
  explicit OpenFile(int fd) : fd_(fd) {}
  ~OpenFile();
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;
  // Reads up to `size` bytes at `offset`; 0 at the end or on an error.
  std::size_t ReadAt(std::uint64_t offset, char* out, std::size_t size) const;

 private:
  int fd_;
};

struct FileResponse {
  int status = 404;
  // One of the two is set for 200 and 206 (range applied by the caller):
  std::shared_ptr<const std::string> body;  // a small file, whole, from the cache
  std::shared_ptr<const OpenFile> file;     // a large file, to stream from disk
  // For a 200 of a small file to an HTTP/1.1 keep-alive client: the whole response, status
  // line and headers included, prepared once when the file was cached (the hot path:
  // timestamp.json).
  std::shared_ptr<const std::string> prepared_200;
  std::uint64_t offset = 0, length = 0;  // the part to send
  std::uint64_t total = 0;
  std::string content_type, etag, cache_control, content_range;
};

class RepositoryFiles {
 public:
  static constexpr std::uint64_t kMaxCachedBytes = 8 << 20;
  // Files up to this size also keep their whole 200 response ready.
  static constexpr std::uint64_t kMaxPreparedBytes = 64 << 10;

  explicit RepositoryFiles(std::string repo_dir);

  // `path` is the URL path below /repo/ (still percent-encoded); `range` the Range header.
  FileResponse Serve(std::string_view path, std::string_view range, std::string_view if_none_match);

  // The version of metadata/timestamp.json now (0 when unreadable).
  std::uint64_t TimestampVersion();

  const std::string& dir() const { return dir_; }

 private:
  struct Cached {
    std::uint64_t dev = 0, ino = 0, size = 0;
    std::int64_t mtime_ns = 0;
    std::shared_ptr<const std::string> content;  // small files
    std::shared_ptr<const OpenFile> file;        // large files (never cached)
    std::shared_ptr<const std::string> prepared_200;
    std::string etag;
  };
  std::shared_ptr<const Cached> Load(const std::string& relative);

  std::string dir_;
  std::string real_dir_;
  std::shared_mutex mu_;
  std::map<std::string, std::shared_ptr<const Cached>> cache_;
};

// Decodes %XX escapes; false for a malformed escape or a NUL byte.
bool PercentDecode(std::string_view in, std::string* out);

}  // namespace qp::server
