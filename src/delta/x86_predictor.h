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
//    segments); the address fields of the tables the linker writes (relocations, symbols,
//    pointer arrays, .eh_frame and its search table; see ElfLayout), predicted field by
//    field instead of scanned as code; and a learned target map: once the new file shows
//    where an old target went, later references to the same old target are predicted from
//    that. Blocks mispredict where tables of near-identical entries (the PLT) shifted; the
//    first call to each entry then teaches the rest. Both sides learn from new bytes
//    already produced, so they agree.
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
#include "delta/elf_layout.h"
#include "delta/target_table.h"

namespace qp::delta {

struct Control;

inline constexpr std::size_t kPredictChunk = 64 * 1024;

class X86Predictor {
 public:
  enum class Level : std::uint8_t { kBranches = 1, kLearned = 2 };

  // Controls carry absolute old positions; the new position of each block is implied.
  // `layout` describes the old file (kLearned; kBranches ignores it).
  X86Predictor(Level level, std::uint64_t old_size, ElfLayout layout,
               const std::vector<Control>& controls);
  ~X86Predictor();

  // True when `old_data` is an x86-64 ELF file.
  static bool Applies(std::span<const std::uint8_t> old_data);
  // Reads what the level needs of the old file (its ELF layout, with the address tables
  // of the kinds in `tables`) and builds the predictor.
  static Result<std::unique_ptr<X86Predictor>> Create(Level level, RandomAccessFile& old_file,
                                                      const std::vector<Control>& controls,
                                                      std::uint8_t tables);

  const ElfLayout& layout() const { return layout_; }

  // Differ: `chunk` holds old bytes from old offset `old_at`, destined for new offset
  // `new_at`; they are replaced by the predicted bytes, learning from `new_bytes` (the new
  // file's bytes for the same span). One chunk: at most kPredictChunk bytes.
  Status PredictForDiff(std::uint64_t old_at, std::uint64_t new_at, std::span<std::uint8_t> chunk,
                        std::span<const std::uint8_t> new_bytes);
  // Applier: `chunk` holds old bytes and becomes the new bytes (predicted + `diff`).
  Status Reconstruct(std::uint64_t old_at, std::uint64_t new_at, std::span<std::uint8_t> chunk,
                     std::span<const std::uint8_t> diff);

  // Maps an old offset to the new one through the block that contains it; false if none.
  bool Map(std::uint64_t old_offset, std::uint64_t* new_offset, std::size_t* index = nullptr) const;

 private:
  struct Block {
    std::uint64_t old_begin, old_end, new_begin;
    // What the last reference into the block missed its prediction by (kLearned): where
    // the block was matched to the wrong place, its next references are set right.
    std::int32_t correction = 0;
  };
  struct Choice {
    bool predicted = false, keyed = false;
    std::int64_t prediction = 0;
    std::uint32_t key = 0;
    std::size_t block = SIZE_MAX;  // the block the target lies in, if any
    std::int64_t raw_block = 0;    // that block's prediction, uncorrected
  };

  // The walk over one chunk: address tables field by field, the rest as code. Each
  // prediction is written into `chunk`, then `actual(k, width)` gives the new file's bytes
  // at chunk position k to learn from.
  template <typename Actual>
  Status Walk(std::uint64_t old_at, std::uint64_t new_at, std::span<std::uint8_t> chunk,
              Actual&& actual);
  template <typename Actual>
  void WalkCode(std::uint64_t old_at, std::uint64_t new_at, std::span<std::uint8_t> chunk,
                std::size_t from, std::size_t to, Actual& actual);
  template <typename Actual>
  void WalkFields(std::uint64_t old_at, std::uint64_t new_at, std::span<std::uint8_t> chunk,
                  std::size_t from, std::size_t to, Actual& actual);
  // An old virtual address mapped through the blocks; false where no block holds it.
  bool MapVaddr(std::int64_t target, std::int64_t* mapped, std::size_t* index) const;
  // The prediction for a reference to `target`: learned, else the block's; false if none.
  bool Choose(std::int64_t target, bool vaddr_space, bool have_block, std::int64_t block,
              std::size_t index, Choice* choice) const;
  // After a reference: `remember` puts a mispredicted target in the learned table; the
  // target's block always takes the miss as its correction.
  void Learn(const Choice& choice, std::uint32_t actual_target, bool remember);

  Level level_;
  std::uint64_t old_size_;
  ElfLayout layout_;
  std::vector<Block> blocks_;           // sorted by old_begin
  std::vector<std::uint64_t> max_end_;  // kLearned: the greatest old_end of blocks_[0..k]
  std::unique_ptr<TargetTable> learned_;
  // Arrays (relocation addends, pointer arrays) whose entries shifted: each field is
  // predicted from the old entry this many entries away, re-found after every miss.
  std::int64_t& ArrayShift(const ElfLayout::Field& f);
  bool OriginalEntry(const ElfLayout::Field& f, std::uint64_t old_at, std::int64_t entries,
                     std::uint64_t* value) const;
  void Realign(const ElfLayout::Field& f, std::uint64_t old_at, std::uint32_t actual_target);
  std::int64_t addend_shift_ = 0, pointer_shift_ = 0;
  std::vector<std::uint8_t> original_;  // the current chunk's old bytes, unpredicted
};

}  // namespace qp::delta
