#include "delta/gzip_member.h"

#include <unistd.h>
#include <zlib.h>

#include <string>

#include "core/memory_file.h"
#include "core/process.h"

namespace qp::delta {
namespace {

constexpr std::size_t kBuffer = 64 * 1024;
// gzip -9 of the largest content (kMaxGzipContent) takes a few seconds here.
constexpr std::chrono::seconds kGzipTimeout{120};

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
  // The trailer's ISIZE (the content's length modulo 2^32) sizes the buffer once; a wrong
  // one (it is not trusted) only costs a regrowth.
  const std::size_t tail = data.size() - 4;
  const std::uint64_t isize = std::uint64_t{data[tail]} | std::uint64_t{data[tail + 1]} << 8 |
                              std::uint64_t{data[tail + 2]} << 16 |
                              std::uint64_t{data[tail + 3]} << 24;
  out.reserve(static_cast<std::size_t>(std::min(isize, limit) + 1));
  z.next_in = const_cast<Bytef*>(data.data());  // zlib's API is not const-correct
  z.avail_in = static_cast<uInt>(std::min<std::size_t>(data.size(), UINT32_MAX));
  int rc = Z_OK;
  while (rc == Z_OK) {
    std::size_t used = out.size();
    if (used >= limit + 1) break;
    const std::size_t room =
        out.capacity() > used ? std::min(kBuffer, out.capacity() - used) : kBuffer;
    out.resize(used + room);
    z.next_out = out.data() + used;
    z.avail_out = static_cast<uInt>(room);
    rc = inflate(&z, Z_NO_FLUSH);
    out.resize(used + room - z.avail_out);
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

namespace {

// gzip -9n, started for content of at most `content_size` bytes, to be fed by the caller.
Result<std::unique_ptr<RunningProcess>> StartGzip(std::uint64_t content_size) {
  const char* gzip = FindGzip();
  if (gzip == nullptr) {
    return Error(ErrorCode::kNotFound, "gzip is not installed (/usr/bin/gzip or /bin/gzip)");
  }
  ProcessSpec spec;
  spec.argv = {gzip, "-9n", "-c"};
  // A fixed, minimal environment: GZIP= options in ours must not change the output.
  spec.env = {"PATH=/usr/bin:/bin", "LC_ALL=C"};
  spec.clean_env = true;
  spec.capture_stderr = false;
  spec.timeout = kGzipTimeout;
  // Deflate never grows data by more than a little; more than this is not gzip's output.
  spec.max_output = static_cast<std::size_t>(content_size + content_size / 8 + 1024);
  spec.overflow = ProcessSpec::Overflow::kFail;
  return RunningProcess::Start(spec);
}

Result<std::vector<std::uint8_t>> GzipOutput(RunningProcess& gzip) {
  QP_ASSIGN_OR_RETURN(ProcessResult run, gzip.Finish());
  if (!run.ok()) return Error(ErrorCode::kIo, "gzip -9n failed: " + run.Describe());
  return std::vector<std::uint8_t>(run.output.begin(), run.output.end());
}

// A file delta's output, fed to gzip as it is made (no more than `limit` bytes): in the
// delta's chunks, not its controls' many small pieces (ApplyFileDelta gathers them).
class GzipInput final : public WritableFile {
 public:
  GzipInput(RunningProcess* gzip, std::uint64_t limit) : gzip_(gzip), limit_(limit) {}
  Status Append(std::span<const std::uint8_t> data) override {
    if (data.size() > limit_ - written_) {
      return Error(ErrorCode::kTooLarge, "more than " + std::to_string(limit_) + " bytes");
    }
    written_ += data.size();
    return gzip_->Write(data);
  }
  Status Sync() override { return OkStatus(); }
  Status Close() override { return OkStatus(); }

 private:
  RunningProcess* gzip_;
  std::uint64_t limit_;
  std::uint64_t written_ = 0;
};

}  // namespace

Result<std::vector<std::uint8_t>> GzipBest(std::span<const std::uint8_t> content) {
  QP_ASSIGN_OR_RETURN(auto gzip, StartGzip(content.size()));
  // A run that failed while fed says why from GzipOutput.
  (void)gzip->Write(content);
  return GzipOutput(*gzip);
}

Result<std::vector<std::uint8_t>> RecompressGzipDelta(std::span<const std::uint8_t> old_gz,
                                                      RandomAccessFile& patch, std::uint64_t offset,
                                                      std::uint64_t length) {
  QP_ASSIGN_OR_RETURN(FileDeltaHeader h, ReadFileDeltaHeader(patch, offset, length));
  if (h.new_size > kMaxGzipContent) {
    return Error(ErrorCode::kCorrupt, "gzip delta makes more than " +
                                          std::to_string(kMaxGzipContent) + " bytes of content");
  }
  // gzip starts while the old content is decompressed, and compresses the new content as
  // the delta makes it: recompressing is most of an install's time when a changelog changed.
  QP_ASSIGN_OR_RETURN(auto gzip, StartGzip(h.new_size));
  auto old_raw = Gunzip(old_gz, kMaxGzipContent);
  if (!old_raw.ok()) return old_raw.error().WithContext("gzip delta source");
  MemoryFile old_file(*old_raw);
  // Checked against the header's size by ApplyFileDelta; the recompressed file is what the
  // manifest checks.
  GzipInput input(gzip.get(), h.new_size);
  auto applied = ApplyFileDelta(old_file, patch, offset, length, input);
  if (!applied.ok()) return applied.error().WithContext("gzip delta");
  return GzipOutput(*gzip);
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
  QP_ASSIGN_OR_RETURN(auto gz, RecompressGzipDelta(old_data, patch, offset, length));
  return out.Append(gz);
}

}  // namespace qp::delta
