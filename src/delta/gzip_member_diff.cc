// Making a gzip delta record, apart from applying one (gzip_member.cc): a device links the
// applier only, and so never maps the suffix sorter that making a delta needs.
#include "delta/gzip_member.h"

namespace qp::delta {

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

}  // namespace qp::delta
