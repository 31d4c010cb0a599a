// File deltas in the bsdiff family: suffix-array matching (libdivsufsort) of the new file
// against the old, approximate matches extended bsdiff-style, and three separately
// compressed streams (controls, difference bytes, literal bytes). Applying streams: it
// reads the old file at random offsets and the patch in order, and writes the new file
// sequentially, in memory bounded by the codec windows, never the file size.
//
// The payload layout is specified in docs/patch-format.md ("File delta payload").
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "core/env.h"
#include "core/hash.h"
#include "core/result.h"
#include "delta/codec.h"
#include "delta/function_pairs.h"
#include "delta/predictor.h"

namespace qp::delta {

// One step of a delta: `add` bytes of old (from old_pos) plus difference bytes, then
// `copy` literal bytes, then the old position moves to the next step's old_pos.
struct Control {
  std::uint64_t add = 0;
  std::uint64_t copy = 0;
  std::int64_t old_pos = 0;
};

// Called with (done, total) bytes of the new file while diffing; may be empty.
using ProgressFn = std::function<void(std::uint64_t done, std::uint64_t total)>;

// Largest old or new file the engine diffs or applies (suffix array indices are 32-bit).
inline constexpr std::uint64_t kMaxFileSize = (std::uint64_t{1} << 31) - 1;

// The memory an applier needs for a file delta does not grow with the file's size: the
// streams' windows, the predictor's blocks (one per matched run of 16 bytes or more) and its
// learned table (docs/patch-format.md, "Memory"). An applier refuses a payload that would
// need more than its limit, counted before anything large is allocated; the differ writes
// a payload over the limit without prediction (then it needs the windows alone).
inline constexpr std::uint64_t kApplyMemoryBound = std::uint64_t{64} << 20;

struct FileDiffOptions {
  CompressOptions compress;
  int threads = 2;  // matching threads for large files
  // ELF address prediction (x86-64 and AArch64 files), chosen from the old file's e_machine.
  bool executable_transform = true;
  // x86-64: 2 (learned targets and RIP-relative operands, patch format 2) or 1 (branches
  // only, what format 1 patches carry; kept so that such patches can be made).
  std::uint8_t x86_level = 2;
  // AArch64: 4 (also stack-frame offsets, patch format 5) or 3 (what format 3 and 4
  // patches carry; kept so that such patches can be made).
  std::uint8_t arm64_level = 4;
  // The learned transforms: which kinds of ELF address table have their fields predicted
  // (a mask of 1 << ElfLayout::TableKind; all five by default).
  std::uint8_t tables = 0x1f;
  // The short path for nearly identical files (suffix_index.h: MatchNearIdentical); off, every
  // file is matched whole (tests of the whole-file matcher; comparisons).
  bool near_identical = true;
  // x86-64: also match as if references had not moved (NormalizeX86Code) and keep the
  // smaller payload. AArch64 always does.
  bool normalized_matching = true;
  // ELF files: a function's old copy, paired by symbol name (function_pairs.h), is preferred
  // over other matches of about the same length.
  bool symbol_pairing = true;
  // The most memory applying the payload may need (ApplyMemoryNeeded).
  std::uint64_t apply_memory = kApplyMemoryBound;
  ProgressFn progress;
};

// Returns the payload that turns `old_data` into `new_data`. kTooLarge past kMaxFileSize.
Result<std::vector<std::uint8_t>> DiffFile(std::span<const std::uint8_t> old_data,
                                           std::span<const std::uint8_t> new_data,
                                           const FileDiffOptions& options);

// A copy of [begin, end) of a file with its code normalized for matching (NormalizeX86Code).
using NormalizeFn = std::vector<std::uint8_t> (*)(std::span<const std::uint8_t> data,
                                                  std::uint64_t begin, std::uint64_t end);

// The matching stage alone (exposed for tests and benchmarks). Inside a function of
// `pairs` (sorted, disjoint: PairFunctionsBySymbol), its old copy is preferred over other
// matches of about the same length. With `normalize`, both files are matched as it makes
// them (the controls then apply to the files as they are).
std::vector<Control> MatchFiles(std::span<const std::uint8_t> old_data,
                                std::span<const std::uint8_t> new_data, int threads,
                                const ProgressFn& progress,
                                std::span<const FunctionPair> pairs = {},
                                NormalizeFn normalize = nullptr);

struct FileApplyResult {
  std::uint64_t size = 0;
  Sha256Digest sha256{};
  // The predictor's hits and misses by kind of reference (all zero for transform 0).
  PredictionStats prediction;
};

// Applies the payload stored at [offset, offset + length) of `patch` to `old_file` and
// appends the new file to `out` (which the caller syncs and closes). Returns the size and
// SHA-256 of what was written; the caller compares them with what it expects. kCorrupt
// (naming the stream or control) on malformed or truncated payloads; nothing but `out` is
// written.
Result<FileApplyResult> ApplyFileDelta(RandomAccessFile& old_file, RandomAccessFile& patch,
                                       std::uint64_t offset, std::uint64_t length,
                                       WritableFile& out,
                                       std::uint64_t memory_limit = kApplyMemoryBound);

// The payload's header, checked for consistency (streams fill the payload, lengths add
// up): what ApplyFileDelta reads first, and what `quietpatch-delta info` shows.
struct FileDeltaHeader {
  struct Stream {
    const char* name;  // control, difference / zero-run, non-zero-run, difference, literal
    Codec codec;
    std::vector<std::uint8_t> params;
    std::uint64_t raw_len, comp_len;
    std::uint64_t offset;  // in the patch file
  };
  std::uint8_t transform = 0, tables = 0, layout = 0;
  std::uint64_t old_size = 0, new_size = 0, controls = 0, diff_len = 0;
  std::vector<Stream> streams;
};
Result<FileDeltaHeader> ReadFileDeltaHeader(RandomAccessFile& patch, std::uint64_t offset,
                                            std::uint64_t length);

// What applying a payload with this header and `blocks` predictor blocks needs at most:
// every stream's window (an LZMA2 stream's dictionary, 2^23 for zstd, none for raw) and
// decoder state, the blocks (16 bytes each, 20 with learning) and the learned table, and
// the fixed buffers.
std::uint64_t ApplyMemoryNeeded(const FileDeltaHeader& header, std::uint64_t blocks);

// In-memory convenience over ApplyFileDelta.
Result<std::vector<std::uint8_t>> ApplyFileDeltaToMemory(std::span<const std::uint8_t> old_data,
                                                         std::span<const std::uint8_t> payload);

}  // namespace qp::delta
