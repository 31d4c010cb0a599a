// Serving the repository's static files: no path escapes (every segment checked, symlinks
// resolved and kept inside the repository), ETag and If-None-Match, Cache-Control that
// fits each file (timestamp.json short-lived; versioned metadata and hash-named targets
// immutable), HEAD, and single byte ranges for resumed downloads. Small files are cached
// in memory and revalidated with one stat per request. Thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>

namespace qp::server {

struct FileResponse {
  int status = 404;
  std::shared_ptr<const std::string> body;  // the whole file (range applied by the caller)
  std::uint64_t offset = 0, length = 0;     // the part to send
  std::uint64_t total = 0;
  std::string content_type, etag, cache_control, content_range;
};

class RepositoryFiles {
 public:
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
    std::shared_ptr<const std::string> content;
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
