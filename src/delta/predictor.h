// Executable-aware prediction for ELF files (in the spirit of Courgette/Zucchini).
//
// When code moves between versions, the addresses instructions and tables hold change
// wherever the reference and what it points at moved by different amounts, which scatters
// small differences over the whole file. The matched blocks of a delta already say how
// every block moved (old offset -> new offset), so both sides can predict each address:
// take the old reference's target, map it through the blocks, and re-aim the reference from
// its new place. Differences are then taken against the predicted bytes, and are zero
// wherever the prediction was right.
//
// The machinery is the same for every architecture: the blocks; the fields of the address
// tables the linker writes (relocations, symbols, pointer arrays, .eh_frame and its search
// table; see ElfLayout), predicted field by field; and a learned target map: once the new
// file shows where an old target went, later references to the same old target are
// predicted from that (blocks mispredict where tables of near-identical entries, the PLT,
// shifted; the first call to each entry then teaches the rest). Both sides learn from new
// bytes already produced, so they agree.
//
// What differs by architecture is how references are found in code: an instruction set is
// a plug-in (x86_code.cc, arm64_code.cc), chosen from the old file's e_machine and recorded
// as the file delta's transform byte:
//  - kX86Branches (patch format 1): x86-64 relative calls and jumps only, no tables, no
//    learning;
//  - kX86Learned (format 2): also RIP-relative operands, tables and learned targets;
//  - kArm64 (format 3): AArch64 B/BL, conditional branches, ADR, ADRP pairs and literal
//    loads, with tables and learned targets;
//  - kArm64Frames (format 5): also the offsets of stack-frame accesses (sp and x29 based
//    loads, stores and address arithmetic), which move together when a compiler lays a
//    function's frame out anew.
//
// Prediction works on chunks of at most kPredictChunk bytes, counted from the start of each
// matched block, and only touches references that lie wholly inside a chunk; the differ
// and the applier chunk identically and visit references in the same order.
#pragma once

#include <array>
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

// A file delta's transform (its payload's first byte).
enum class Transform : std::uint8_t {
  kNone = 0,
  kX86Branches = 1,
  kX86Learned = 2,
  kArm64 = 3,
  kArm64Frames = 4,
};

// The strongest transform for an old file, from its ELF header: kX86Learned for an x86-64
// ELF64 little-endian file, kArm64Frames for an AArch64 one, else kNone.
Transform TransformFor(std::span<const std::uint8_t> old_data);
const char* TransformName(std::uint8_t transform);
// True for the transforms that predict address tables (their payload names which).
inline constexpr bool HasTableMask(std::uint8_t transform) {
  return transform == static_cast<std::uint8_t>(Transform::kX86Learned) ||
         transform == static_cast<std::uint8_t>(Transform::kArm64) ||
         transform == static_cast<std::uint8_t>(Transform::kArm64Frames);
}
inline constexpr bool IsArm64(Transform transform) {
  return transform == Transform::kArm64 || transform == Transform::kArm64Frames;
}

// The kinds of reference a predictor visits, for its counts of hits and misses.
enum class RefKind : std::uint8_t {
  kX86Branch,      // E8 / E9 / 0F 8x rel32
  kX86Rip,         // [rip + disp32] operands
  kA64Branch,      // B, BL (imm26)
  kA64CondBranch,  // B.cond, CBZ/CBNZ (imm19), TBZ/TBNZ (imm14)
  kA64Adr,         // ADR (imm21)
  kA64AdrpPair,    // ADRP + ADD / LDR / STR (page + low 12 bits)
  kA64Literal,     // LDR (literal), PRFM (literal)
  kA64Frame,       // sp / x29 based LDR/STR, LDUR/STUR, LDP/STP, ADD/SUB (transform 4)
  kRela,           // table fields, by ElfLayout::TableKind
  kSymbols,
  kPointers,
  kEhFrameHdr,
  kEhFrame,
};
inline constexpr int kRefKinds = 13;
const char* RefKindName(RefKind kind);

// What transform 4's walk has learned of the stack frame of the function it is in: how
// the offsets of its accesses moved, by base register and class, and by old offset. Kept
// across chunks (functions run on from one block into the next); arm64_code.cc uses it.
struct FrameLearning {
  static constexpr int kSlots = 64;
  struct Slot {
    std::uint32_t epoch = 0;
    std::uint8_t key = 0;
    std::int32_t old_offset = 0, shift = 0;
  };
  std::array<std::int32_t, 4> shift{};  // by key: base (sp 0, x29 2) + saved register (1)
  std::array<Slot, kSlots> slots{};
  std::uint32_t epoch = 1;  // slots of other epochs are empty
  std::uint64_t last = 0;   // the old offset of the last frame access
};

struct PredictionStats {
  std::array<std::uint64_t, kRefKinds> hit{}, miss{};
};

class Predictor {
 public:
  // A matched block: old [old_begin, old_end) went to new_begin. 16 bytes, since the
  // applier keeps one for every block of the file (offsets are below 2^31).
  struct Block {
    std::uint32_t old_begin, old_end, new_begin;
    // What the last reference into the block missed its prediction by (learning
    // transforms): where the block was matched to the wrong place, its next references
    // are set right.
    std::int32_t correction = 0;
  };
  // Short blocks are usually accidental matches; their offsets predict nothing reliable.
  static constexpr std::uint64_t kMinBlock = 16;
  // The memory a predictor takes beyond its blocks: its index of them by old offset.
  static constexpr int kPageBits = 12;
  static std::uint64_t IndexBytes(std::uint64_t old_size) {
    return ((old_size >> kPageBits) + 2) * sizeof(std::uint32_t);
  }
  // Appends the block of a control (one with an `add` run of at least kMinBlock bytes)
  // written at new offset `new_pos`.
  static void AddBlock(const Control& c, std::uint64_t new_pos, std::vector<Block>* blocks);

  // `blocks` in control order, as AddBlock makes them (the constructor sorts them).
  // `layout` describes the old file (the learned transforms; kX86Branches ignores it).
  Predictor(Transform transform, std::uint64_t old_size, ElfLayout layout,
            std::vector<Block> blocks);
  ~Predictor();

  // Reads what the transform needs of the old file (its ELF layout, with the address
  // tables of the kinds in `tables`) and builds the predictor. kInvalidArgument for kNone.
  static Result<std::unique_ptr<Predictor>> Create(Transform transform, RandomAccessFile& old_file,
                                                   std::vector<Block> blocks, std::uint8_t tables);
  // The same from controls (absolute old positions; each block's new position is implied).
  static Result<std::unique_ptr<Predictor>> Create(Transform transform, RandomAccessFile& old_file,
                                                   const std::vector<Control>& controls,
                                                   std::uint8_t tables);

  // Differ: `chunk` holds old bytes from old offset `old_at`, destined for new offset
  // `new_at`; they are replaced by the predicted bytes, learning from `new_bytes` (the new
  // file's bytes for the same span). One chunk: at most kPredictChunk bytes.
  Status PredictForDiff(std::uint64_t old_at, std::uint64_t new_at, std::span<std::uint8_t> chunk,
                        std::span<const std::uint8_t> new_bytes);
  // Applier: `chunk` holds old bytes and becomes the new bytes (predicted + `diff`).
  Status Reconstruct(std::uint64_t old_at, std::uint64_t new_at, std::span<std::uint8_t> chunk,
                     std::span<const std::uint8_t> diff);

  const PredictionStats& stats() const { return stats_; }
  Transform transform() const { return transform_; }

  // --- What the instruction-set plug-ins use. ---

  // A reference's prediction: the learned target if any, else its block's (corrected).
  struct Choice {
    bool predicted = false, keyed = false;
    std::int64_t prediction = 0;
    std::uint32_t key = 0;
    std::size_t block = SIZE_MAX;  // the block the target lies in, if any
    std::int64_t raw_block = 0;    // that block's prediction, uncorrected
  };

  bool learning() const { return learned_ != nullptr; }
  const ElfLayout& layout() const { return layout_; }
  std::uint64_t old_size() const { return old_size_; }
  // Maps an old offset to the new one through the block that contains it; false if none.
  bool Map(std::uint64_t old_offset, std::uint64_t* new_offset, std::size_t* index = nullptr) const;
  // Transform 4, for an offset that no block holds: mapped through the first block that
  // starts after it, as if it moved with that block (code just before a block was often
  // rewritten in place: a function whose prologue changed); false if none, or if that
  // block's new start is nearer the file's start than the gap.
  bool MapAhead(std::uint64_t old_offset, std::uint64_t* new_offset, std::size_t* index) const;
  // An old virtual address mapped through the blocks; false where no block holds it (with
  // `ahead`, transform 4 then tries MapAhead).
  bool MapVaddr(std::int64_t target, std::int64_t* mapped, std::size_t* index,
                bool ahead = true) const;
  // The prediction for a reference to `target` (learning transforms): learned, else the
  // block's; false if none.
  bool Choose(std::int64_t target, bool vaddr_space, bool have_block, std::int64_t block,
              std::size_t index, Choice* choice) const;
  // The same for a virtual address, mapped through the blocks first (MapVaddr).
  bool ChooseVaddr(std::int64_t target, Choice* choice, bool ahead = true) const;
  // After a reference: counts it, and (`remember`) puts a mispredicted target in the
  // learned table; the target's block always takes the miss as its correction.
  void Learn(RefKind kind, const Choice& choice, std::uint32_t actual_target, bool remember);
  // The new file's `width` (4 or 8) bytes at chunk position k, zero-extended: given to the
  // differ; rebuilt by the applier from the prediction already written there plus the
  // difference. A plug-in reads a position only after its last write there.
  std::uint64_t Actual(std::size_t k, int width) const;
  // Counts a reference that has no target (a frame access).
  void Count(RefKind kind, bool hit) {
    ++(hit ? stats_.hit : stats_.miss)[static_cast<std::size_t>(kind)];
  }
  FrameLearning& frames() { return frames_; }

 private:
  // The walk over one chunk: address tables field by field, the rest as code.
  Status Walk(std::uint64_t old_at, std::uint64_t new_at, std::span<std::uint8_t> chunk);
  void WalkCode(std::uint64_t old_at, std::uint64_t new_at, std::span<std::uint8_t> chunk,
                std::size_t from, std::size_t to);
  void WalkFields(std::uint64_t old_at, std::uint64_t new_at, std::span<std::uint8_t> chunk,
                  std::size_t from, std::size_t to);

  // The index of the first block (by old_begin) that starts past `old_offset`, or the
  // number of blocks.
  std::size_t FirstBlockAfter(std::uint64_t old_offset) const;
  // Arrays (relocation addends, pointer arrays) whose entries shifted: each field is
  // predicted from the old entry this many entries away, re-found after every miss.
  std::int64_t& ArrayShift(const ElfLayout::Field& f);
  bool OriginalEntry(const ElfLayout::Field& f, std::uint64_t old_at, std::int64_t entries,
                     std::uint64_t* value) const;
  void Realign(const ElfLayout::Field& f, std::uint64_t old_at, std::uint32_t actual_target);

  Transform transform_;
  std::uint64_t old_size_;
  ElfLayout layout_;
  std::vector<Block> blocks_;           // sorted by old_begin
  std::vector<std::uint32_t> max_end_;  // learning: the greatest old_end of blocks_[0..k]
  // For each page (2^kPageBits bytes) of the old file, the first block starting in it or
  // later.
  std::vector<std::uint32_t> page_first_;
  std::unique_ptr<TargetTable> learned_;
  std::int64_t addend_shift_ = 0, pointer_shift_ = 0, search_shift_ = 0;
  std::vector<std::uint8_t> original_;  // the current chunk's old bytes, unpredicted
  // The chunk being walked, and where Actual reads the new bytes: `source_` itself (the
  // differ) or `chunk_` + `source_` (the applier).
  std::span<const std::uint8_t> chunk_, source_;
  bool rebuilding_ = false;
  FrameLearning frames_;
  PredictionStats stats_;
};

// The instruction-set plug-ins: each scans [from, to) of `chunk` as code, and for each
// reference it finds asks `p` for a prediction, writes it into the chunk, and tells `p`
// what the new file holds. docs/patch-format.md specifies both exactly.
struct CodeSpan {
  std::uint64_t old_at, new_at;
  std::span<std::uint8_t> chunk;
  std::size_t from, to;
};
void WalkX86Code(Predictor& p, const CodeSpan& span);
void WalkArm64Code(Predictor& p, const CodeSpan& span);
// Transform 4 (arm64_frames.cc): the word `w` at chunk position i (old offset
// `old_offset`), which is no PC-relative reference nor the low half of an ADRP pair, as a
// stack-frame access.
void PredictArm64Frame(Predictor& p, std::span<std::uint8_t> chunk, std::size_t i,
                       std::uint64_t old_offset, std::uint32_t w);
// Transform 4: literal bytes of the new file (those of a control's `copy` run) at new
// offset `new_at`, with the immediates of B/BL and ADRP made absolute (`to_stored`: a
// call's target and a page's number, which repeat where the same function or page is
// referred to, and compress) or relative again. Words at new offsets that are multiples of
// 4, wholly inside `bytes`, where `layout` (the old file's) has code: the new file's code
// lies about where the old file's did.
void Arm64Literals(const ElfLayout& layout, std::uint64_t new_at, std::span<std::uint8_t> bytes,
                   bool to_stored);
// For the differ's matcher (NormalizeArm64Code): `w` with a frame access's offset and form
// cleared, for loads and stores of one register; false for any other word.
bool NormalizeArm64Frame(std::uint32_t* w);

// For the differ's matcher only (the patch format does not depend on it): a copy of an
// AArch64 file in which the PC-relative immediates the predictor re-aims are replaced
// inside its sections of instructions (a call's by a hash of its callee's first two
// instructions, so that it keeps what it calls; the others by zero), so that code whose
// references moved still matches as a whole. The matched blocks are then diffed against
// the real bytes. The copy is of [begin, end) of the file (clipped to it), normalized as it
// lies in the whole file.
std::vector<std::uint8_t> NormalizeArm64Code(std::span<const std::uint8_t> data,
                                             std::uint64_t begin, std::uint64_t end);
// The same for x86-64, in its sections of instructions: the displacements of relative calls
// (a hash of the callee's first 8 bytes), jumps and RIP-relative operands (zero). A copy of
// part of the file starts decoding at `begin` (the scan finds its footing within a few
// instructions).
std::vector<std::uint8_t> NormalizeX86Code(std::span<const std::uint8_t> data, std::uint64_t begin,
                                           std::uint64_t end);

}  // namespace qp::delta
