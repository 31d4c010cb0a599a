// Executable-aware prediction for x86-64 ELF files (in the spirit of Courgette/Zucchini).
//
// When code moves between versions, the 32-bit displacements in instructions change
// wherever the instruction and what it points at moved by different amounts, which
// scatters small differences over the whole text. The matched blocks of a delta already
// say how every block moved (old offset -> new offset), so both sides can predict each
// displacement: take the old instruction's target, map it through the blocks, and re-aim
// the instruction from its new place. Differences are then taken against the predicted
// bytes, and are zero wherever the prediction was right.
//
// Two levels (the payload's transform byte says which):
//  - kBranches (patch format 1): relative calls and jumps (E8, E9, 0F 80..8F), targets
//    mapped through the blocks.
//  - kLearned (format 2): also RIP-relative memory operands (`lea/mov/cmp ... [rip+d32]`,
//    whose targets are virtual addresses, converted through the old file's PT_LOAD
//    segments), and a learned target map: once the new file shows where an old target went,
//    later references to the same old target are predicted from that. Blocks mispredict
//    where tables of near-identical entries (the PLT) shifted; the first call to each entry
//    then teaches the rest. Both sides learn from new bytes already produced, so they agree.
//
// Prediction works on chunks of at most kPredictChunk bytes, counted from the start of each
// matched block, and only touches instructions that lie wholly inside a chunk; the differ
// and the applier chunk identically and visit instructions in the same order.
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
  enum class Level : std::uint8_t { kBranches = 1, kLearned = 2 };

  // Controls carry absolute old positions; the new position of each block is implied.
  // `elf_head` holds at least the old file's ELF and program headers (or all of it).
  X86Predictor(Level level, std::uint64_t old_size, std::span<const std::uint8_t> elf_head,
               const std::vector<Control>& controls);
  ~X86Predictor();

  // True when `old_data` is an x86-64 ELF file.
  static bool Applies(std::span<const std::uint8_t> old_data);
  static Result<std::unique_ptr<X86Predictor>> ForApply(Level level, RandomAccessFile& old_file,
                                                        const std::vector<Control>& controls);

  // Differ: `chunk` holds old bytes from old offset `old_at`, destined for new offset
  // `new_at`; they are replaced by the predicted bytes, learning from `new_bytes` (the new
  // file's bytes for the same span). One chunk: at most kPredictChunk bytes.
  Status PredictForDiff(std::uint64_t old_at, std::uint64_t new_at, std::span<std::uint8_t> chunk,
                        std::span<const std::uint8_t> new_bytes);
  // Applier: `chunk` holds old bytes and becomes the new bytes (predicted + `diff`).
  Status Reconstruct(std::uint64_t old_at, std::uint64_t new_at, std::span<std::uint8_t> chunk,
                     std::span<const std::uint8_t> diff);

  // Maps an old offset to the new one through the block that contains it; false if none.
  bool Map(std::uint64_t old_offset, std::uint64_t* new_offset) const;

 private:
  struct Block {
    std::uint64_t old_begin, old_end, new_begin;
  };
  struct Segment {
    std::uint64_t offset, filesz, vaddr;
  };
  class TargetTable;

  // The shared walk: predicts each displacement in `chunk`, then asks `actual(k)` for the
  // new file's 4 bytes at chunk position k to learn from.
  template <typename Actual>
  Status Walk(std::uint64_t old_at, std::uint64_t new_at, std::span<std::uint8_t> chunk,
              Actual&& actual);
  // Old file offset <-> virtual address through the PT_LOAD segments; false outside them.
  bool OffsetToVaddr(std::uint64_t offset, std::int64_t* vaddr) const;
  bool VaddrToOffset(std::int64_t vaddr, std::uint64_t* offset) const;
  // True for an address inside a PT_LOAD segment's memory image (.bss included).
  bool InImage(std::int64_t vaddr) const;

  Level level_;
  std::uint64_t old_size_;
  std::vector<Block> blocks_;  // sorted by old_begin
  std::vector<Segment> segments_;
  std::vector<std::uint64_t> memsz_;  // per segment
  std::unique_ptr<TargetTable> learned_;
};

}  // namespace qp::delta
