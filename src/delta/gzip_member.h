// Gzip-compressed files inside trees (Debian's changelog.gz and friends). A change at the
// start of the text changes every compressed byte after it, so a delta of the compressed
// files is as large as the file. When the new file is exactly what `gzip -9n` makes of
// its content (as Debian's packaging tools make them), a patch can carry a delta of the
// decompressed contents instead and the applier recompresses; the result is checked
// against the manifest like any other file.
//
// Decompression is in process (zlib); recompression runs GNU gzip (/usr/bin/gzip or
// /bin/gzip), whose deflate output zlib does not reproduce.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/env.h"
#include "core/result.h"
#include "delta/file_delta.h"

namespace qp::delta {

// The largest decompressed content handled this way (it is held in memory).
inline constexpr std::uint64_t kMaxGzipContent = 16u << 20;

// True if `data` starts with the gzip magic bytes.
bool LooksGzipped(std::span<const std::uint8_t> data);

// The content of a single-member gzip file. kCorrupt if it is not one (or has data after
// the member), kTooLarge past `limit` bytes of content.
Result<std::vector<std::uint8_t>> Gunzip(std::span<const std::uint8_t> data, std::uint64_t limit);

// What `gzip -9n` makes of `content`. kNotFound if gzip is not installed, kIo if it fails.
Result<std::vector<std::uint8_t>> GzipBest(std::span<const std::uint8_t> content);

// The payload of a gzip delta record: a file delta between the decompressed contents.
// kUnsupported when the files are not both gzip files within kMaxGzipContent, or when
// `gzip -9n` does not give back `new_gz` exactly (then a plain delta must be used).
Result<std::vector<std::uint8_t>> DiffGzipped(std::span<const std::uint8_t> old_gz,
                                              std::span<const std::uint8_t> new_gz,
                                              const FileDiffOptions& options);

// The new gzip file such a payload ([offset, offset + length) of `patch`) makes of the
// gzip file `old_gz`. Memory: the two contents (each at most kMaxGzipContent) and the
// result.
Result<std::vector<std::uint8_t>> RecompressGzipDelta(std::span<const std::uint8_t> old_gz,
                                                      RandomAccessFile& patch, std::uint64_t offset,
                                                      std::uint64_t length);

// Applies such a payload ([offset, offset + length) of `patch`) to the gzip file `old_gz`,
// appending the recompressed new file to `out`. Memory: the two contents (each at most
// kMaxGzipContent).
Status ApplyGzipDelta(RandomAccessFile& old_gz, RandomAccessFile& patch, std::uint64_t offset,
                      std::uint64_t length, WritableFile& out);

}  // namespace qp::delta
