// The matcher's internals, shared by the whole-file scan (suffix_matcher.cc) and the
// short path for nearly identical files (near_identical.cc).
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <vector>

#include "delta/file_delta.h"
#include "delta/function_pairs.h"

namespace qp::delta {

using ByteView = std::span<const std::uint8_t>;

// The suffix array of an old file (libdivsufsort) with an index of where each k-byte
// prefix's suffixes lie in it, so that a search starts inside the range of suffixes that
// share the target's first bytes: a few binary-search steps instead of log2(old size), each
// of which misses the cache twice. k is 1 to 3 by the file's size (the 3-byte table is
// 64 MiB, for files of 4 MiB and more).
class SuffixIndex {
 public:
  explicit SuffixIndex(ByteView old);
  // Longest match of `target` among the suffixes of the old file: its length, and in
  // `*pos` where it starts. The old file must not be empty.
  std::int64_t Search(ByteView target, std::int64_t* pos) const;

 private:
  std::size_t Key(ByteView s) const;

  ByteView old_;
  std::vector<std::int32_t> sa_;
  int k_ = 2;
  std::vector<std::uint32_t> starts_;  // old sizes are below 2^31
};

// bsdiff 4's scan over new[begin, end) against the indexed old file; appends controls (with
// absolute old positions) that cover exactly that range. A match leaves the current
// alignment when it is `margin` bytes better (bsdiff: 8). Inside a function of `pairs`, its
// old copy is taken over any other match that is at most 2 bytes longer. `done` (may be null)
// counts the new bytes scanned.
// `nw` may be a copy of part of the new file: `origin` is where nw[0] lies in it.
void ScanSlice(const SuffixIndex& index, ByteView old, ByteView nw, std::int64_t origin,
               std::int64_t begin, std::int64_t end, std::int64_t margin,
               std::span<const FunctionPair> pairs, std::vector<Control>* out,
               std::atomic<std::uint64_t>* done);

// The short path for files that are mostly the same (a rebuild, a one-line fix): long
// stretches equal under one alignment are found first by hashing, and only the gaps between
// them are matched, each against a suffix index of the old bytes around it. Returns false
// (and leaves `out` alone) when the files are not that alike.
bool MatchNearIdentical(ByteView old, ByteView nw, std::vector<Control>* out);

}  // namespace qp::delta
