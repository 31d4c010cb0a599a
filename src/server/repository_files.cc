#include "server/repository_files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <mutex>

#include "contract/timestamp_peek.h"

namespace qp::server {
namespace {

constexpr std::uint64_t kMaxFileBytes = 1ull << 32;

std::string Hex(std::uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%llx", static_cast<unsigned long long>(v));
  return buf;
}

bool IsHashName(std::string_view name) {
  if (name.size() < 65 || name[64] != '.') return false;
  for (std::size_t i = 0; i < 64; ++i) {
    char c = name[i];
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// Versioned metadata: "<digits>.<role>.json".
bool IsVersionedMetadata(std::string_view name) {
  std::size_t dot = name.find('.');
  if (dot == 0 || dot == std::string_view::npos) return false;
  for (std::size_t i = 0; i < dot; ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
  }
  return true;
}

std::string CacheControl(const std::string& rel) {
  std::string name = rel.substr(rel.rfind('/') + 1);
  if (rel == "metadata/timestamp.json") return "public, max-age=1, must-revalidate";
  if (rel.rfind("metadata/", 0) == 0 && IsVersionedMetadata(name)) {
    return "public, max-age=31536000, immutable";
  }
  if (rel.rfind("targets/", 0) == 0 && IsHashName(name))
    return "public, max-age=31536000, immutable";
  return "public, max-age=60";
}

std::string ContentType(const std::string& rel) {
  return rel.ends_with(".json") ? "application/json" : "application/octet-stream";
}

// Parses "bytes=a-b", "bytes=a-", "bytes=-n" against `total`. Returns false for anything
// else (several ranges, garbage): the whole file is sent then, as RFC 9110 allows.
// `satisfiable` is false for a range that starts past the end.
bool ParseRange(std::string_view h, std::uint64_t total, std::uint64_t* first, std::uint64_t* last,
                bool* satisfiable) {
  *satisfiable = true;
  if (h.rfind("bytes=", 0) != 0) return false;
  h.remove_prefix(6);
  if (h.find(',') != std::string_view::npos) return false;
  std::size_t dash = h.find('-');
  if (dash == std::string_view::npos) return false;
  auto num = [](std::string_view s, std::uint64_t* v) {
    if (s.empty() || s.size() > 19) return false;
    *v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return false;
      *v = *v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    return true;
  };
  std::string_view a = h.substr(0, dash), b = h.substr(dash + 1);
  if (a.empty()) {
    std::uint64_t n;
    if (!num(b, &n)) return false;
    if (n == 0 || total == 0) {
      *satisfiable = false;
      return true;
    }
    *first = n >= total ? 0 : total - n;
    *last = total - 1;
    return true;
  }
  if (!num(a, first)) return false;
  if (b.empty()) {
    *last = total == 0 ? 0 : total - 1;
  } else if (!num(b, last) || *last < *first) {
    return false;
  }
  if (*first >= total) {
    *satisfiable = false;
    return true;
  }
  if (*last >= total) *last = total - 1;
  return true;
}

}  // namespace

bool PercentDecode(std::string_view in, std::string* out) {
  out->clear();
  for (std::size_t i = 0; i < in.size(); ++i) {
    char c = in[i];
    if (c == '%') {
      if (i + 2 >= in.size()) return false;
      auto hex = [](char h) -> int {
        if (h >= '0' && h <= '9') return h - '0';
        if (h >= 'a' && h <= 'f') return h - 'a' + 10;
        if (h >= 'A' && h <= 'F') return h - 'A' + 10;
        return -1;
      };
      int hi = hex(in[i + 1]), lo = hex(in[i + 2]);
      if (hi < 0 || lo < 0) return false;
      c = static_cast<char>(hi * 16 + lo);
      i += 2;
    }
    if (c == '\0') return false;
    out->push_back(c);
  }
  return true;
}

RepositoryFiles::RepositoryFiles(std::string repo_dir) : dir_(std::move(repo_dir)) {
  char buf[PATH_MAX];
  real_dir_ = ::realpath(dir_.c_str(), buf) != nullptr ? std::string(buf) : dir_;
}

OpenFile::~OpenFile() { ::close(fd_); }

std::size_t OpenFile::ReadAt(std::uint64_t offset, char* out, std::size_t size) const {
  std::size_t done = 0;
  while (done < size) {
    ssize_t n = ::pread(fd_, out + done, size - done, static_cast<off_t>(offset + done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  return done;
}

std::shared_ptr<const RepositoryFiles::Cached> RepositoryFiles::Load(const std::string& relative) {
  std::string full = real_dir_ + "/" + relative;
  struct stat st {};
  if (::stat(full.c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
      static_cast<std::uint64_t>(st.st_size) > kMaxFileBytes) {
    return nullptr;
  }
  auto mtime_of = [](const struct stat& s) {
    return static_cast<std::int64_t>(s.st_mtim.tv_sec) * 1000000000 + s.st_mtim.tv_nsec;
  };
  {
    std::shared_lock<std::shared_mutex> lock(mu_);
    auto it = cache_.find(relative);
    if (it != cache_.end() && it->second->ino == st.st_ino && it->second->dev == st.st_dev &&
        it->second->mtime_ns == mtime_of(st) &&
        it->second->size == static_cast<std::uint64_t>(st.st_size)) {
      return it->second;
    }
  }
  // Symlinks must not lead out of the repository.
  char buf[PATH_MAX];
  if (::realpath(full.c_str(), buf) == nullptr) return nullptr;
  std::string real(buf);
  if (real.rfind(real_dir_ + "/", 0) != 0) return nullptr;
  int fd = ::open(real.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return nullptr;
  auto file = std::make_shared<const OpenFile>(fd);
  // What was opened is what is described (the path may have been replaced since the stat).
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) ||
      static_cast<std::uint64_t>(st.st_size) > kMaxFileBytes) {
    return nullptr;
  }
  auto cached = std::make_shared<Cached>();
  cached->dev = st.st_dev;
  cached->ino = st.st_ino;
  cached->size = static_cast<std::uint64_t>(st.st_size);
  cached->mtime_ns = mtime_of(st);
  cached->etag = "\"" + Hex(cached->size) + "-" +
                 Hex(static_cast<std::uint64_t>(cached->mtime_ns)) + "-" + Hex(cached->ino) + "\"";
  if (cached->size > kMaxCachedBytes) {
    cached->file = std::move(file);  // streamed by the caller, never held whole
    return cached;
  }
  auto content = std::make_shared<std::string>(static_cast<std::size_t>(cached->size), '\0');
  if (file->ReadAt(0, content->data(), content->size()) != content->size()) return nullptr;
  if (cached->size <= kMaxPreparedBytes) {
    auto prepared = std::make_shared<std::string>(
        "HTTP/1.1 200 OK\r\nServer: quietpatch-server\r\nAccept-Ranges: bytes\r\nETag: " +
        cached->etag + "\r\nCache-Control: " + CacheControl(relative) + "\r\nContent-Type: " +
        ContentType(relative) + "\r\nContent-Length: " + std::to_string(cached->size) + "\r\n\r\n");
    prepared->append(*content);
    cached->prepared_200 = std::move(prepared);
  }
  cached->content = std::move(content);
  std::unique_lock<std::shared_mutex> lock(mu_);
  if (cache_.size() > 4096) cache_.clear();
  cache_[relative] = cached;
  return cached;
}

FileResponse RepositoryFiles::Serve(std::string_view path, std::string_view range,
                                    std::string_view if_none_match) {
  FileResponse r;
  std::string decoded;
  if (path.size() > 2048 || !PercentDecode(path, &decoded)) {
    r.status = 400;
    return r;
  }
  // Every segment must be a plain name: no "", ".", ".." (no escape, no ambiguity).
  std::size_t start = 0;
  while (true) {
    std::size_t slash = decoded.find('/', start);
    std::string seg =
        decoded.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (seg.empty() || seg == "." || seg == "..") {
      r.status = 404;
      return r;
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  if (decoded.rfind("metadata/", 0) != 0 && decoded.rfind("targets/", 0) != 0) {
    r.status = 404;
    return r;
  }
  auto file = Load(decoded);
  if (!file) {
    r.status = 404;
    return r;
  }
  r.etag = file->etag;
  r.cache_control = CacheControl(decoded);
  r.content_type = ContentType(decoded);
  r.total = file->size;
  r.body = file->content;
  r.file = file->file;
  r.prepared_200 = file->prepared_200;
  if (!if_none_match.empty() && if_none_match == file->etag) {
    r.status = 304;
    return r;
  }
  std::uint64_t first = 0, last = 0;
  bool satisfiable = true;
  if (!range.empty() && ParseRange(range, file->size, &first, &last, &satisfiable)) {
    if (!satisfiable) {
      r.status = 416;
      r.content_range = "bytes */" + std::to_string(file->size);
      return r;
    }
    r.status = 206;
    r.offset = first;
    r.length = last - first + 1;
    r.content_range = "bytes " + std::to_string(first) + "-" + std::to_string(last) + "/" +
                      std::to_string(file->size);
    return r;
  }
  r.status = 200;
  r.offset = 0;
  r.length = file->size;
  return r;
}

std::uint64_t RepositoryFiles::TimestampVersion() {
  auto file = Load("metadata/timestamp.json");
  if (!file || !file->content) return 0;  // absent, or implausibly large
  const std::string& text = *file->content;
  auto peek = contract::PeekTimestamp(
      std::span(reinterpret_cast<const std::uint8_t*>(text.data()), text.size()));
  return peek.ok() ? peek->version : 0;  // 0: not yet published (or not readable)
}

}  // namespace qp::server
