#include "delta/predictor.h"

#include <algorithm>
#include <cstring>

#include "delta/byte_io.h"
#include "delta/file_delta.h"

namespace qp::delta {
namespace {

std::int32_t LoadI32(const std::uint8_t* p) { return static_cast<std::int32_t>(LoadLe(p, 4)); }

// Addresses in table fields at or above this are not taken for addresses.
constexpr std::uint64_t kAddressLimit = std::uint64_t{1} << 40;
// How far (in entries) Realign looks for the old entry an array field now holds.
constexpr std::int64_t kMaxArrayShift = 3;
// How many blocks, by nearest start, Map looks at for the longest one holding an offset.
constexpr std::size_t kMapCandidates = 64;

}  // namespace

void Predictor::AddBlock(const Control& c, std::uint64_t new_pos, std::vector<Block>* blocks) {
  if (c.add < kMinBlock) return;
  // Offsets and sizes are below 2^31 (kMaxFileSize), checked by both sides before this.
  const auto begin = static_cast<std::uint32_t>(c.old_pos);
  blocks->push_back(
      Block{begin, static_cast<std::uint32_t>(begin + c.add), static_cast<std::uint32_t>(new_pos)});
}

Predictor::Predictor(Transform transform, std::uint64_t old_size, ElfLayout layout,
                     std::vector<Block> blocks)
    : transform_(transform),
      old_size_(old_size),
      layout_(std::move(layout)),
      blocks_(std::move(blocks)) {
  std::stable_sort(blocks_.begin(), blocks_.end(),
                   [](const Block& a, const Block& b) { return a.old_begin < b.old_begin; });
  page_first_.resize(static_cast<std::size_t>((old_size >> kPageBits) + 2));
  std::size_t first = 0;
  for (std::size_t page = 0; page < page_first_.size(); ++page) {
    while (first < blocks_.size() && (blocks_[first].old_begin >> kPageBits) < page) ++first;
    page_first_[page] = static_cast<std::uint32_t>(first);
  }
  if (transform_ != Transform::kX86Branches) {
    learned_ = std::make_unique<TargetTable>(old_size);
    max_end_.resize(blocks_.size());
    std::uint32_t m = 0;
    for (std::size_t k = 0; k < blocks_.size(); ++k)
      max_end_[k] = m = std::max(m, blocks_[k].old_end);
  }
}

Predictor::~Predictor() = default;

Transform TransformFor(std::span<const std::uint8_t> old_data) {
  static const std::uint8_t kElf64Le[] = {0x7f, 'E', 'L', 'F', 2, 1};
  if (old_data.size() < 64 || std::memcmp(old_data.data(), kElf64Le, 6) != 0) {
    return Transform::kNone;
  }
  switch (LoadLe(&old_data[18], 2)) {  // e_machine
    case 62:                           // EM_X86_64
      return Transform::kX86Learned;
    case 183:  // EM_AARCH64
      return Transform::kArm64Frames;
    default:
      return Transform::kNone;
  }
}

const char* TransformName(std::uint8_t transform) {
  switch (static_cast<Transform>(transform)) {
    case Transform::kNone:
      return "none";
    case Transform::kX86Branches:
      return "x86-64 branches";
    case Transform::kX86Learned:
      return "x86-64 learned";
    case Transform::kArm64:
      return "aarch64 learned";
    case Transform::kArm64Frames:
      return "aarch64 learned, frames";
  }
  return "unknown";
}

const char* RefKindName(RefKind kind) {
  static const char* const kNames[kRefKinds] = {
      "x86 branch",    "x86 rip-relative", "a64 b/bl",         "a64 b.cond/cbz/tbz", "a64 adr",
      "a64 adrp pair", "a64 literal",      "a64 frame offset", "relocation",         "symbol",
      "pointer",       ".eh_frame_hdr",    ".eh_frame"};
  return kNames[static_cast<int>(kind)];
}

Result<std::unique_ptr<Predictor>> Predictor::Create(Transform transform,
                                                     RandomAccessFile& old_file,
                                                     const std::vector<Control>& controls,
                                                     std::uint8_t tables) {
  std::vector<Block> blocks;
  std::uint64_t new_pos = 0;
  for (const Control& c : controls) {
    AddBlock(c, new_pos, &blocks);
    new_pos += c.add + c.copy;
  }
  return Create(transform, old_file, std::move(blocks), tables);
}

Result<std::unique_ptr<Predictor>> Predictor::Create(Transform transform,
                                                     RandomAccessFile& old_file,
                                                     std::vector<Block> blocks,
                                                     std::uint8_t tables) {
  if (transform == Transform::kNone) {
    return Error(ErrorCode::kInvalidArgument, "no predictor for transform 0");
  }
  ElfLayout layout;
  if (transform != Transform::kX86Branches) {
    // AArch64 code is scanned only in the sections of instructions (text and data share
    // a segment, and a data word looks like an instruction more often than on x86).
    QP_ASSIGN_OR_RETURN(layout, ElfLayout::Read(old_file, tables, IsArm64(transform)));
    if (IsArm64(transform)) layout.SetSearchTableArrays();
  }
  return std::make_unique<Predictor>(transform, old_file.Size(), std::move(layout),
                                     std::move(blocks));
}

std::size_t Predictor::FirstBlockAfter(std::uint64_t old_offset) const {
  // It lies between the first blocks of the offset's page and of the next.
  auto lo = blocks_.begin(), hi = blocks_.end();
  if (const std::uint64_t page = old_offset >> kPageBits; page + 1 < page_first_.size()) {
    lo += page_first_[page];
    hi = blocks_.begin() + page_first_[page + 1];
  }
  auto it = std::upper_bound(lo, hi, old_offset,
                             [](std::uint64_t v, const Block& b) { return v < b.old_begin; });
  return static_cast<std::size_t>(it - blocks_.begin());
}

bool Predictor::Map(std::uint64_t old_offset, std::uint64_t* new_offset, std::size_t* index) const {
  const std::size_t after = FirstBlockAfter(old_offset);
  if (after == 0) return false;
  std::size_t found = after - 1;
  if (learning()) {
    // Blocks overlap in the old file (a region can be copied twice, and short accidental
    // matches sit inside long ones): take the longest block that holds the offset, among
    // the kMapCandidates nearest starts before it.
    std::size_t best = SIZE_MAX;
    std::uint64_t best_len = 0;
    for (std::size_t k = found, seen = 0; seen < kMapCandidates; --k, ++seen) {
      if (max_end_[k] <= old_offset) break;  // no earlier block reaches the offset
      const Block& b = blocks_[k];
      if (old_offset < b.old_end && b.old_end - b.old_begin > best_len) {
        best = k;
        best_len = b.old_end - b.old_begin;
      }
      if (k == 0) break;
    }
    if (best == SIZE_MAX) return false;
    found = best;
  } else if (old_offset >= blocks_[found].old_end) {
    return false;
  }
  const Block& b = blocks_[found];
  *new_offset = b.new_begin + (old_offset - b.old_begin);
  if (index != nullptr) *index = found;
  return true;
}

bool Predictor::MapAhead(std::uint64_t old_offset, std::uint64_t* new_offset,
                         std::size_t* index) const {
  const std::size_t after = FirstBlockAfter(old_offset);
  if (after == blocks_.size()) return false;
  const Block& b = blocks_[after];
  const std::uint64_t gap = b.old_begin - old_offset;
  if (b.new_begin < gap) return false;
  *new_offset = b.new_begin - gap;
  if (index != nullptr) *index = after;
  return true;
}

bool Predictor::MapVaddr(std::int64_t target, std::int64_t* mapped, std::size_t* index,
                         bool ahead) const {
  std::uint64_t offset = 0, new_offset = 0;
  if (!layout_.VaddrToOffset(target, &offset)) return false;
  if (!Map(offset, &new_offset, index) &&
      !(ahead && transform_ == Transform::kArm64Frames && MapAhead(offset, &new_offset, index))) {
    return false;
  }
  *mapped = static_cast<std::int64_t>(new_offset) + (target - static_cast<std::int64_t>(offset));
  return true;
}

bool Predictor::Choose(std::int64_t target, bool vaddr_space, bool have_block, std::int64_t block,
                       std::size_t index, Choice* choice) const {
  choice->predicted = have_block;
  choice->block = have_block ? index : SIZE_MAX;
  choice->raw_block = block;
  choice->prediction = have_block ? block + blocks_[index].correction : 0;
  choice->keyed = TargetTable::Key(target, vaddr_space, &choice->key);
  std::uint32_t remembered = 0;
  if (choice->keyed && learned_->Find(choice->key, &remembered)) {
    choice->predicted = true;
    choice->prediction = remembered;
  }
  return choice->predicted;
}

bool Predictor::ChooseVaddr(std::int64_t target, Choice* choice, bool ahead) const {
  std::int64_t block = 0;
  std::size_t index = 0;
  const bool have_block = MapVaddr(target, &block, &index, ahead);
  return Choose(target, true, have_block, block, index, choice);
}

void Predictor::Learn(RefKind kind, const Choice& choice, std::uint32_t actual_target,
                      bool remember) {
  const bool hit =
      choice.predicted && actual_target == static_cast<std::uint32_t>(choice.prediction);
  ++(hit ? stats_.hit : stats_.miss)[static_cast<std::size_t>(kind)];
  if (remember && choice.keyed &&
      (!choice.predicted || actual_target != static_cast<std::uint32_t>(choice.prediction))) {
    learned_->Put(choice.key, actual_target);
  }
  if (choice.block != SIZE_MAX) {
    blocks_[choice.block].correction =
        static_cast<std::int32_t>(actual_target - static_cast<std::uint32_t>(choice.raw_block));
  }
}

Status Predictor::Walk(std::uint64_t old_at, std::uint64_t new_at, std::span<std::uint8_t> chunk) {
  if (chunk.size() > kPredictChunk) {
    return Error(ErrorCode::kInternal, "prediction chunk larger than kPredictChunk");
  }
  const std::size_t n = chunk.size();
  if (!learning()) {
    WalkCode(old_at, new_at, chunk, 0, n);
    return OkStatus();
  }
  original_.assign(chunk.begin(), chunk.end());
  // Address tables get their fields predicted; everything else is scanned as code.
  for (std::size_t pos = 0; pos < n;) {
    std::uint64_t bound = 0;
    bool table = layout_.TableAt(old_at + pos, &bound) >= 0;
    std::size_t stop = bound - old_at >= n ? n : static_cast<std::size_t>(bound - old_at);
    if (table) {
      WalkFields(old_at, new_at, chunk, pos, stop);
    } else {
      WalkCode(old_at, new_at, chunk, pos, stop);
    }
    pos = stop;
  }
  return OkStatus();
}

void Predictor::WalkCode(std::uint64_t old_at, std::uint64_t new_at, std::span<std::uint8_t> chunk,
                         std::size_t from, std::size_t to) {
  const CodeSpan span{old_at, new_at, chunk, from, to};
  if (IsArm64(transform_)) {
    WalkArm64Code(*this, span);
  } else {
    WalkX86Code(*this, span);
  }
}

void Predictor::WalkFields(std::uint64_t old_at, std::uint64_t new_at,
                           std::span<std::uint8_t> chunk, std::size_t from, std::size_t to) {
  std::uint8_t* d = chunk.data();
  std::uint64_t next_free = old_at + from;
  std::uint64_t table_end = 0;
  const int table_kind = layout_.TableAt(old_at + from, &table_end);
  if (table_kind < 0) return;
  layout_.ForEachField(old_at + from, old_at + to, [&](const ElfLayout::Field& f) {
    if (f.offset < next_free) return;  // overlaps the previous field
    next_free = f.offset + f.width;
    const std::size_t k = static_cast<std::size_t>(f.offset - old_at);
    std::int64_t field_vaddr = 0;
    if (!layout_.OffsetToVaddr(f.offset, &field_vaddr)) return;
    // The field's new address, if its section kept its placement.
    const std::int64_t new_field =
        static_cast<std::int64_t>(new_at + k) + (field_vaddr - static_cast<std::int64_t>(f.offset));
    std::int64_t target = 0, base = 0;  // base: what the stored value is relative to, new
    switch (f.base) {
      case ElfLayout::FieldBase::kAbsolute: {
        std::uint64_t v = LoadLe(d + k, 8);
        std::uint64_t shifted = 0;
        if (f.array_stride != 0 && ArrayShift(f) != 0 &&
            OriginalEntry(f, old_at, ArrayShift(f), &shifted)) {
          v = shifted;  // the array's entries moved by ArrayShift(f) since the match
        }
        if (v == 0 || v >= kAddressLimit) return;
        target = static_cast<std::int64_t>(v);
        break;
      }
      case ElfLayout::FieldBase::kSelf:
        target = field_vaddr + LoadI32(d + k);
        base = new_field;
        break;
      case ElfLayout::FieldBase::kSelfBackward:
        target =
            field_vaddr - static_cast<std::int64_t>(static_cast<std::uint32_t>(LoadI32(d + k)));
        base = new_field;
        break;
      case ElfLayout::FieldBase::kSection: {
        std::int64_t section_vaddr = 0;
        if (!layout_.OffsetToVaddr(f.section_offset, &section_vaddr)) return;
        std::int64_t x = LoadI32(d + k);
        std::uint64_t shifted = 0;
        if (f.array_stride != 0 && ArrayShift(f) != 0 &&
            OriginalEntry(f, old_at, ArrayShift(f), &shifted)) {
          x = static_cast<std::int32_t>(shifted);
        }
        target = section_vaddr + x;
        base = new_field - static_cast<std::int64_t>(f.offset - f.section_offset);
        break;
      }
    }
    if (!layout_.InImage(target)) return;
    Choice choice;
    const bool backward = f.base == ElfLayout::FieldBase::kSelfBackward;
    if (ChooseVaddr(target, &choice)) {
      if (f.width == 8) {
        StoreLe(d + k, static_cast<std::uint64_t>(choice.prediction), 8);
      } else {
        std::int64_t stored = backward ? base - choice.prediction : choice.prediction - base;
        StoreLe(d + k, static_cast<std::uint32_t>(stored), 4);
      }
    }
    std::uint64_t a = Actual(k, f.width);
    std::uint32_t actual_target =
        f.width == 8 ? static_cast<std::uint32_t>(a)
        : backward   ? static_cast<std::uint32_t>(base) - static_cast<std::uint32_t>(a)
                     : static_cast<std::uint32_t>(base) + static_cast<std::uint32_t>(a);
    if (f.array_stride != 0 &&
        (!choice.predicted || actual_target != static_cast<std::uint32_t>(choice.prediction))) {
      Realign(f, old_at, actual_target);
    }
    // Table entries teach the blocks' corrections but not the learned targets: where a
    // table's entries were matched one entry off, each field shows a neighbour's target,
    // which would mislead every later reference to its own.
    Learn(static_cast<RefKind>(static_cast<int>(RefKind::kRela) + table_kind), choice,
          actual_target, /*remember=*/false);
  });
}

std::int64_t& Predictor::ArrayShift(const ElfLayout::Field& f) {
  if (f.base == ElfLayout::FieldBase::kSection) return search_shift_;
  return f.array_stride == 8 ? pointer_shift_ : addend_shift_;
}

bool Predictor::OriginalEntry(const ElfLayout::Field& f, std::uint64_t old_at, std::int64_t entries,
                              std::uint64_t* value) const {
  const std::int64_t o = static_cast<std::int64_t>(f.offset) + entries * f.array_stride;
  if (o < static_cast<std::int64_t>(f.section_offset) ||
      o + f.width > static_cast<std::int64_t>(f.section_end) ||
      o < static_cast<std::int64_t>(old_at) ||
      o + f.width > static_cast<std::int64_t>(old_at + original_.size())) {
    return false;
  }
  *value =
      LoadLe(&original_[static_cast<std::size_t>(o - static_cast<std::int64_t>(old_at))], f.width);
  return true;
}

void Predictor::Realign(const ElfLayout::Field& f, std::uint64_t old_at,
                        std::uint32_t actual_target) {
  std::int64_t& shift = ArrayShift(f);
  for (std::int64_t step = 0; step <= 2 * kMaxArrayShift; ++step) {
    const std::int64_t j = (step % 2 == 0) ? -(step / 2) : (step + 1) / 2;  // 0, 1, -1, 2, -2 ...
    std::uint64_t v = 0;
    if (j == shift || !OriginalEntry(f, old_at, j, &v)) continue;
    std::int64_t target = static_cast<std::int64_t>(v);
    if (f.base == ElfLayout::FieldBase::kSection) {
      std::int64_t section_vaddr = 0;
      if (!layout_.OffsetToVaddr(f.section_offset, &section_vaddr)) continue;
      target = section_vaddr + static_cast<std::int32_t>(v);
    } else if (v == 0 || v >= kAddressLimit) {
      continue;
    }
    if (!layout_.InImage(target)) continue;
    Choice choice;
    if (ChooseVaddr(target, &choice) &&
        static_cast<std::uint32_t>(choice.prediction) == actual_target) {
      shift = j;
      return;
    }
  }
}

std::uint64_t Predictor::Actual(std::size_t k, int width) const {
  if (!rebuilding_) return LoadLe(&source_[k], width);
  std::uint8_t b[8] = {};
  for (int j = 0; j < width; ++j) b[j] = static_cast<std::uint8_t>(chunk_[k + j] + source_[k + j]);
  return LoadLe(b, width);
}

Status Predictor::PredictForDiff(std::uint64_t old_at, std::uint64_t new_at,
                                 std::span<std::uint8_t> chunk,
                                 std::span<const std::uint8_t> new_bytes) {
  if (new_bytes.size() != chunk.size()) {
    return Error(ErrorCode::kInternal, "new bytes and chunk differ in length");
  }
  chunk_ = chunk;
  source_ = new_bytes;
  rebuilding_ = false;
  return Walk(old_at, new_at, chunk);
}

Status Predictor::Reconstruct(std::uint64_t old_at, std::uint64_t new_at,
                              std::span<std::uint8_t> chunk, std::span<const std::uint8_t> diff) {
  if (diff.size() != chunk.size()) {
    return Error(ErrorCode::kInternal, "difference and chunk differ in length");
  }
  chunk_ = chunk;
  source_ = diff;
  rebuilding_ = true;
  QP_RETURN_IF_ERROR(Walk(old_at, new_at, chunk));
  for (std::size_t k = 0; k < chunk.size(); ++k)
    chunk[k] = static_cast<std::uint8_t>(chunk[k] + diff[k]);
  return OkStatus();
}

}  // namespace qp::delta
