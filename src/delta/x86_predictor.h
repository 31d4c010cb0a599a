// Executable-aware prediction for x86-64 ELF files (in the spirit of Courgette/Zucchini).
//
// When code moves between versions, the 32-bit displacements of relative calls and jumps
// (E8, E9, 0F 80..8F) change wherever the caller and the callee moved by different amounts,
// which scatters small differences over the whole text. The matched blocks of a delta
// already say how every block moved (old offset -> new offset), so both sides can predict
// each displacement: take the old instruction's target, map it through the blocks, and
// re-aim the instruction from its new place. Differences are then taken against the
// predicted bytes, and are zero wherever the prediction was right.
//
// Prediction works on chunks of at most kPredictChunk bytes, counted from the start of each
// matched block, and only touches instructions that lie wholly inside a chunk; the differ
// and the applier chunk identically, so they predict identically.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/env.h"
#include "core/result.h"

namespace qp::delta {

struct Control;

inline constexpr std::size_t kPredictChunk = 64 * 1024;

class X86Predictor {
 public:
  // Controls carry absolute old positions; the new position of each block is implied.
  X86Predictor(std::uint64_t old_size, const std::vector<Control>& controls);

  // True when `old_data` is an x86-64 ELF file.
  static bool Applies(std::span<const std::uint8_t> old_data);
  static Result<std::unique_ptr<X86Predictor>> ForApply(RandomAccessFile& old_file,
                                                        const std::vector<Control>& controls);

  // Rewrites, in place, the displacements inside `chunk` (old bytes from old offset
  // `old_at`, destined for new offset `new_at`). One chunk: at most kPredictChunk bytes.
  Status PredictChunk(std::uint64_t old_at, std::uint64_t new_at, std::span<std::uint8_t> chunk) const;

  // A whole block, chunked as the applier chunks it.
  void Predict(std::uint64_t old_at, std::uint64_t new_at, std::span<std::uint8_t> block) const;

  // Maps an old offset to the new one through the block that contains it; false if none.
  bool Map(std::uint64_t old_offset, std::uint64_t* new_offset) const;

 private:
  struct Block {
    std::uint64_t old_begin, old_end, new_begin;
  };
  std::uint64_t old_size_;
  std::vector<Block> blocks_;  // sorted by old_begin
};

}  // namespace qp::delta
