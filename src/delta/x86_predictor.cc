#include "delta/x86_predictor.h"

#include <algorithm>
#include <cstring>

#include "delta/file_delta.h"
#include "delta/x86_instructions.h"

namespace qp::delta {
namespace {

std::int32_t LoadI32(const std::uint8_t* p) {
  std::uint32_t v = static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
                    static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
  return static_cast<std::int32_t>(v);
}

void StoreI32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

std::uint64_t LoadU64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

void StoreU64(std::uint8_t* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

// Addresses in table fields at or above this are not taken for addresses.
constexpr std::uint64_t kAddressLimit = std::uint64_t{1} << 40;
// How far (in entries) Realign looks for the old entry an array field now holds.
constexpr std::int64_t kMaxArrayShift = 3;
// How many blocks, by nearest start, Map looks at for the longest one holding an offset.
constexpr std::size_t kMapCandidates = 64;

}  // namespace

X86Predictor::X86Predictor(Level level, std::uint64_t old_size, ElfLayout layout,
                           const std::vector<Control>& controls)
    : level_(level), old_size_(old_size), layout_(std::move(layout)) {
  std::uint64_t new_pos = 0;
  blocks_.reserve(controls.size());
  for (const Control& c : controls) {
    // Short blocks are usually accidental matches; their offsets predict nothing reliable.
    if (c.add >= 16) {
      auto begin = static_cast<std::uint64_t>(c.old_pos);
      blocks_.push_back(Block{begin, begin + c.add, new_pos});
    }
    new_pos += c.add + c.copy;
  }
  std::stable_sort(blocks_.begin(), blocks_.end(),
                   [](const Block& a, const Block& b) { return a.old_begin < b.old_begin; });
  if (level_ == Level::kLearned) {
    learned_ = std::make_unique<TargetTable>(old_size);
    max_end_.resize(blocks_.size());
    std::uint64_t m = 0;
    for (std::size_t k = 0; k < blocks_.size(); ++k)
      max_end_[k] = m = std::max(m, blocks_[k].old_end);
  }
}

X86Predictor::~X86Predictor() = default;

bool X86Predictor::Applies(std::span<const std::uint8_t> old_data) {
  static const std::uint8_t kElf64Le[] = {0x7f, 'E', 'L', 'F', 2, 1};
  return old_data.size() >= 64 && std::memcmp(old_data.data(), kElf64Le, 6) == 0 &&
         old_data[18] == 62 && old_data[19] == 0;  // e_machine EM_X86_64
}

Result<std::unique_ptr<X86Predictor>> X86Predictor::Create(Level level, RandomAccessFile& old_file,
                                                           const std::vector<Control>& controls,
                                                           std::uint8_t tables) {
  ElfLayout layout;
  if (level == Level::kLearned) {
    QP_ASSIGN_OR_RETURN(layout, ElfLayout::Read(old_file, tables));
  }
  return std::make_unique<X86Predictor>(level, old_file.Size(), std::move(layout), controls);
}

bool X86Predictor::Map(std::uint64_t old_offset, std::uint64_t* new_offset,
                       std::size_t* index) const {
  auto it = std::upper_bound(blocks_.begin(), blocks_.end(), old_offset,
                             [](std::uint64_t v, const Block& b) { return v < b.old_begin; });
  if (it == blocks_.begin()) return false;
  std::size_t found = static_cast<std::size_t>(it - blocks_.begin()) - 1;
  if (level_ == Level::kLearned) {
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

bool X86Predictor::MapVaddr(std::int64_t target, std::int64_t* mapped, std::size_t* index) const {
  std::uint64_t offset = 0, new_offset = 0;
  if (!layout_.VaddrToOffset(target, &offset) || !Map(offset, &new_offset, index)) return false;
  *mapped = static_cast<std::int64_t>(new_offset) + (target - static_cast<std::int64_t>(offset));
  return true;
}

bool X86Predictor::Choose(std::int64_t target, bool vaddr_space, bool have_block,
                          std::int64_t block, std::size_t index, Choice* choice) const {
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

void X86Predictor::Learn(const Choice& choice, std::uint32_t actual_target, bool remember) {
  if (remember && choice.keyed &&
      (!choice.predicted || actual_target != static_cast<std::uint32_t>(choice.prediction))) {
    learned_->Put(choice.key, actual_target);
  }
  if (choice.block != SIZE_MAX) {
    blocks_[choice.block].correction =
        static_cast<std::int32_t>(actual_target - static_cast<std::uint32_t>(choice.raw_block));
  }
}

template <typename Actual>
Status X86Predictor::Walk(std::uint64_t old_at, std::uint64_t new_at, std::span<std::uint8_t> chunk,
                          Actual&& actual) {
  if (chunk.size() > kPredictChunk) {
    return Error(ErrorCode::kInternal, "prediction chunk larger than kPredictChunk");
  }
  const std::size_t n = chunk.size();
  if (level_ == Level::kLearned) original_.assign(chunk.begin(), chunk.end());
  if (level_ == Level::kBranches) {
    WalkCode(old_at, new_at, chunk, 0, n, actual);
    return OkStatus();
  }
  // Address tables get their fields predicted; everything else is scanned as code.
  for (std::size_t pos = 0; pos < n;) {
    std::uint64_t bound = 0;
    bool table = layout_.TableAt(old_at + pos, &bound) >= 0;
    std::size_t stop = bound - old_at >= n ? n : static_cast<std::size_t>(bound - old_at);
    if (table) {
      WalkFields(old_at, new_at, chunk, pos, stop, actual);
    } else {
      WalkCode(old_at, new_at, chunk, pos, stop, actual);
    }
    pos = stop;
  }
  return OkStatus();
}

template <typename Actual>
void X86Predictor::WalkCode(std::uint64_t old_at, std::uint64_t new_at,
                            std::span<std::uint8_t> chunk, std::size_t from, std::size_t to,
                            Actual& actual) {
  const bool learn = level_ == Level::kLearned;
  std::uint8_t* d = chunk.data();
  for (std::size_t i = from; i + 5 <= to;) {
    std::size_t disp_at = 0, end = 0;
    bool rip = false;
    if (d[i] == 0xE8 || d[i] == 0xE9) {
      disp_at = i + 1;
      end = i + 5;
    } else if (d[i] == 0x0F && i + 6 <= to && (d[i + 1] & 0xF0) == 0x80) {
      disp_at = i + 2;
      end = i + 6;
    } else if (learn && !layout_.segments().empty() && MatchRipRelative(d, i, to, &disp_at, &end)) {
      rip = true;
    } else {
      ++i;
      continue;
    }
    const std::int64_t disp = LoadI32(d + disp_at);
    // Where the instruction ends and what it points at, old and new, in one address space:
    // file offsets for branches (code runs at offset == address in ELF text), virtual
    // addresses for RIP-relative operands.
    std::int64_t old_end = static_cast<std::int64_t>(old_at + end);
    std::int64_t new_end = static_cast<std::int64_t>(new_at + end);
    std::int64_t target = 0, block = 0;
    bool plausible = false, have_block = false;
    std::size_t index = 0;
    if (!rip) {
      target = old_end + disp;
      plausible = target >= 0 && static_cast<std::uint64_t>(target) < old_size_;
      std::uint64_t mapped = 0;
      if (plausible && Map(static_cast<std::uint64_t>(target), &mapped, &index)) {
        have_block = true;
        block = static_cast<std::int64_t>(mapped);
      }
    } else {
      std::int64_t end_vaddr = 0;
      if (layout_.OffsetToVaddr(static_cast<std::uint64_t>(old_end), &end_vaddr)) {
        new_end += end_vaddr - old_end;  // the instruction's segment keeps its placement
        target = end_vaddr + disp;
        plausible = layout_.InImage(target);
        have_block = plausible && MapVaddr(target, &block, &index);
      }
    }
    if (!plausible || (!learn && !have_block)) {
      // Not taken for an instruction (format 1: only where the target maps).
      ++i;
      continue;
    }
    if (!learn) {
      std::int64_t new_disp = block - new_end;
      if (new_disp >= INT32_MIN && new_disp <= INT32_MAX) {
        StoreI32(d + disp_at, static_cast<std::uint32_t>(new_disp));
      }
      i = end;
      continue;
    }
    Choice choice;
    if (Choose(target, rip, have_block, block, index, &choice)) {
      StoreI32(d + disp_at, static_cast<std::uint32_t>(choice.prediction - new_end));
    }
    Learn(choice,
          static_cast<std::uint32_t>(actual(disp_at, 4)) + static_cast<std::uint32_t>(new_end),
          /*remember=*/true);
    i = end;
  }
}

template <typename Actual>
void X86Predictor::WalkFields(std::uint64_t old_at, std::uint64_t new_at,
                              std::span<std::uint8_t> chunk, std::size_t from, std::size_t to,
                              Actual& actual) {
  std::uint8_t* d = chunk.data();
  std::uint64_t next_free = old_at + from;
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
        std::uint64_t v = LoadU64(d + k);
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
        target = section_vaddr + LoadI32(d + k);
        base = new_field - static_cast<std::int64_t>(f.offset - f.section_offset);
        break;
      }
    }
    if (!layout_.InImage(target)) return;
    std::int64_t block = 0;
    std::size_t index = 0;
    bool have_block = MapVaddr(target, &block, &index);
    Choice choice;
    const bool backward = f.base == ElfLayout::FieldBase::kSelfBackward;
    if (Choose(target, true, have_block, block, index, &choice)) {
      if (f.width == 8) {
        StoreU64(d + k, static_cast<std::uint64_t>(choice.prediction));
      } else {
        std::int64_t stored = backward ? base - choice.prediction : choice.prediction - base;
        StoreI32(d + k, static_cast<std::uint32_t>(stored));
      }
    }
    std::uint64_t a = actual(k, f.width);
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
    Learn(choice, actual_target, /*remember=*/false);
  });
}

std::int64_t& X86Predictor::ArrayShift(const ElfLayout::Field& f) {
  return f.array_stride == 8 ? pointer_shift_ : addend_shift_;
}

bool X86Predictor::OriginalEntry(const ElfLayout::Field& f, std::uint64_t old_at,
                                 std::int64_t entries, std::uint64_t* value) const {
  const std::int64_t o = static_cast<std::int64_t>(f.offset) + entries * f.array_stride;
  if (o < static_cast<std::int64_t>(f.section_offset) ||
      o + 8 > static_cast<std::int64_t>(f.section_end) || o < static_cast<std::int64_t>(old_at) ||
      o + 8 > static_cast<std::int64_t>(old_at + original_.size())) {
    return false;
  }
  *value = LoadU64(&original_[static_cast<std::size_t>(o - static_cast<std::int64_t>(old_at))]);
  return true;
}

void X86Predictor::Realign(const ElfLayout::Field& f, std::uint64_t old_at,
                           std::uint32_t actual_target) {
  std::int64_t& shift = ArrayShift(f);
  for (std::int64_t step = 0; step <= 2 * kMaxArrayShift; ++step) {
    const std::int64_t j = (step % 2 == 0) ? -(step / 2) : (step + 1) / 2;  // 0, 1, -1, 2, -2 ...
    std::uint64_t v = 0;
    if (j == shift || !OriginalEntry(f, old_at, j, &v) || v == 0 || v >= kAddressLimit) continue;
    const auto target = static_cast<std::int64_t>(v);
    if (!layout_.InImage(target)) continue;
    std::int64_t block = 0;
    std::size_t index = 0;
    bool have_block = MapVaddr(target, &block, &index);
    Choice choice;
    if (Choose(target, true, have_block, block, index, &choice) &&
        static_cast<std::uint32_t>(choice.prediction) == actual_target) {
      shift = j;
      return;
    }
  }
}

Status X86Predictor::PredictForDiff(std::uint64_t old_at, std::uint64_t new_at,
                                    std::span<std::uint8_t> chunk,
                                    std::span<const std::uint8_t> new_bytes) {
  return Walk(old_at, new_at, chunk, [&](std::size_t k, int width) {
    return width == 8 ? LoadU64(&new_bytes[k]) : static_cast<std::uint32_t>(LoadI32(&new_bytes[k]));
  });
}

Status X86Predictor::Reconstruct(std::uint64_t old_at, std::uint64_t new_at,
                                 std::span<std::uint8_t> chunk,
                                 std::span<const std::uint8_t> diff) {
  QP_RETURN_IF_ERROR(Walk(old_at, new_at, chunk, [&](std::size_t k, int width) {
    std::uint8_t b[8] = {};
    for (int j = 0; j < width; ++j) b[j] = static_cast<std::uint8_t>(chunk[k + j] + diff[k + j]);
    return LoadU64(b);
  }));
  for (std::size_t k = 0; k < chunk.size(); ++k)
    chunk[k] = static_cast<std::uint8_t>(chunk[k] + diff[k]);
  return OkStatus();
}

}  // namespace qp::delta
