// The entropy stage of the patch formats: each stream is stored raw, zstd- or LZMA2-
// compressed, whichever is smallest, with a window no larger than kMaxWindowLog so that a
// decoder's memory stays bounded whatever the file size. Decoding streams from any reader.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/env.h"
#include "core/result.h"

namespace qp::delta {

enum class Codec : std::uint8_t { kRaw = 0, kZstd = 1, kLzma2 = 2 };

// 2^23 = 8 MiB: the largest window a decoder allocates for one stream.
inline constexpr int kMaxWindowLog = 23;

struct CompressOptions {
  bool try_zstd = true;
  bool try_lzma = true;
  int zstd_level = 19;
  bool lzma_extreme = true;
  // The largest window this stream may take (12 to kMaxWindowLog): what its decoder holds.
  int max_window_log = kMaxWindowLog;
  // An LZMA2 stream larger than `parallel_above` is compressed in `threads` parts at once,
  // each starting with a dictionary reset (one LZMA2 stream all the same; a part loses the
  // window of what precedes it).
  int threads = 1;
  std::size_t parallel_above = std::size_t{32} << 20;
};

// A compressed stream: its codec, the codec's parameter bytes, and the payload.
struct EncodedStream {
  Codec codec = Codec::kRaw;
  std::vector<std::uint8_t> params;  // zstd: none; lzma2: [props byte, dict log]
  std::vector<std::uint8_t> bytes;
};

// Compresses `data` with every enabled codec (and a few LZMA2 literal-context settings)
// and returns the smallest encoding. Never fails; raw is always a candidate.
EncodedStream CompressBest(std::span<const std::uint8_t> data, const CompressOptions& options);

// Decodes one stream incrementally. Memory is bounded by the window (kMaxWindowLog) plus
// small buffers. Not thread-safe.
class StreamDecoder {
 public:
  virtual ~StreamDecoder() = default;
  // Fills `out` completely; kCorrupt if the stream ends early or is malformed.
  virtual Status Read(std::span<std::uint8_t> out) = 0;
  // Checks that the stream produced exactly its declared length and consumed all input.
  virtual Status Finish() = 0;

  // `src` bytes [offset, offset + comp_len) hold the stream, which decodes to raw_len bytes.
  // `params` are the codec's parameter bytes as stored. kUnsupported for an unknown codec.
  static Result<std::unique_ptr<StreamDecoder>> Open(Codec codec,
                                                     std::span<const std::uint8_t> params,
                                                     RandomAccessFile* src, std::uint64_t offset,
                                                     std::uint64_t comp_len, std::uint64_t raw_len,
                                                     const char* name);
};

// Reads a stream's `raw_len` bytes into memory, growing with what is decoded (in 64 KiB
// steps), then checks its end: a declared length that the data does not back costs nothing.
Result<std::vector<std::uint8_t>> ReadStream(StreamDecoder& dec, std::uint64_t raw_len);

// Whole-buffer convenience for small streams: decodes into a vector of raw_len bytes.
Result<std::vector<std::uint8_t>> DecodeAll(Codec codec, std::span<const std::uint8_t> params,
                                            std::span<const std::uint8_t> comp,
                                            std::uint64_t raw_len, const char* name);

}  // namespace qp::delta
