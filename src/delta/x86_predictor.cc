#include "delta/x86_predictor.h"

#include <algorithm>
#include <cstring>

#include "delta/file_delta.h"

namespace qp::delta {
namespace {

// The ELF and program headers are looked for in the first 64 KiB of the old file; both
// sides read the same span, so a file whose headers lie further simply gets no RIP-relative
// prediction.
constexpr std::size_t kElfHeadBytes = 64 * 1024;
constexpr std::uint16_t kMaxSegments = 256;

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

// Immediate bytes after the displacement of a one-byte-opcode instruction with a ModRM
// operand, or -1 for opcodes not predicted. `reg` is the ModRM reg field (groups F6/F7).
int OneByteImmediate(std::uint8_t op, int reg) {
  if (op < 0x40 && (op & 7) < 4) return 0;  // ALU r/m,r and r,r/m forms (add ... cmp)
  switch (op) {
    case 0x63: case 0x84: case 0x85: case 0x86: case 0x87: case 0x88: case 0x89: case 0x8A:
    case 0x8B: case 0x8D: case 0xD1: case 0xD3: case 0xFF:
      return 0;
    case 0x80: case 0x83: case 0xC6: case 0x6B: case 0xC0: case 0xC1:
      return 1;
    case 0x81: case 0xC7: case 0x69:
      return 4;
    case 0xF6:
      return reg < 2 ? 1 : 0;
    case 0xF7:
      return reg < 2 ? 4 : 0;
    default:
      return -1;
  }
}

// The same for two-byte opcodes 0F xx (SSE moves and arithmetic, cmov, movzx/movsx, imul).
int TwoByteImmediate(std::uint8_t op) {
  if ((op >= 0x10 && op <= 0x17) || op == 0x28 || op == 0x29 || op == 0x2A ||
      (op >= 0x2C && op <= 0x2F) || (op >= 0x40 && op <= 0x4F) || (op >= 0x51 && op <= 0x6F) ||
      (op >= 0x74 && op <= 0x76) || op == 0x7E || op == 0x7F || op == 0xAF || op == 0xB6 ||
      op == 0xB7 || op == 0xBE || op == 0xBF || (op >= 0xD0 && op <= 0xFE)) {
    return 0;
  }
  if (op == 0x70 || op == 0xC2 || op == 0xC4 || op == 0xC5 || op == 0xC6) return 1;
  return -1;
}

// Recognises an instruction with a RIP-relative operand starting at d[i]: an optional
// 66/F2/F3 prefix, an optional REX prefix, a one- or two-byte opcode from the tables above,
// ModRM with mod=00 rm=101, disp32, immediate. Sets the displacement's position and the
// instruction's end; false if none, or if it does not end inside [0, n).
bool MatchRipRelative(const std::uint8_t* d, std::size_t i, std::size_t n, std::size_t* disp_at,
                      std::size_t* end) {
  std::size_t j = i;
  if (j < n && (d[j] == 0x66 || d[j] == 0xF2 || d[j] == 0xF3)) ++j;
  if (j < n && (d[j] & 0xF0) == 0x40) ++j;
  if (j + 2 > n) return false;
  int imm;
  if (d[j] == 0x0F) {
    imm = TwoByteImmediate(d[j + 1]);
    j += 2;
  } else {
    if (j + 1 >= n) return false;
    imm = OneByteImmediate(d[j], (d[j + 1] >> 3) & 7);
    j += 1;
  }
  if (imm < 0 || j >= n || (d[j] & 0xC7) != 0x05) return false;
  std::size_t e = j + 5 + static_cast<std::size_t>(imm);
  if (e > n) return false;
  *disp_at = j + 1;
  *end = e;
  return true;
}

}  // namespace

// Old target -> new target (mod 2^32) for the references the blocks mispredicted. Open
// addressing in a fixed array sized from the old file; once three quarters full it takes no
// new keys (both sides fill it identically, so they stop identically).
class X86Predictor::TargetTable {
 public:
  explicit TargetTable(std::uint64_t old_size) {
    std::size_t cap = 4096;
    while (cap < (1u << 19) && cap < old_size / 128) cap <<= 1;
    slots_.assign(cap, 0);
    mask_ = cap - 1;
    limit_ = cap / 4 * 3;
  }
  // Keys are 1 + (target << 1 | space), so 0 marks an empty slot; false if unrepresentable.
  static bool Key(std::int64_t target, bool rip, std::uint32_t* key) {
    if (target < 0 || target >= (std::int64_t{1} << 31) - 1) return false;
    *key = static_cast<std::uint32_t>((target << 1 | (rip ? 1 : 0)) + 1);
    return true;
  }
  bool Find(std::uint32_t key, std::uint32_t* value) const {
    for (std::size_t s = Hash(key);; s = (s + 1) & mask_) {
      std::uint32_t k = static_cast<std::uint32_t>(slots_[s] >> 32);
      if (k == 0) return false;
      if (k == key) {
        *value = static_cast<std::uint32_t>(slots_[s]);
        return true;
      }
    }
  }
  void Put(std::uint32_t key, std::uint32_t value) {
    for (std::size_t s = Hash(key);; s = (s + 1) & mask_) {
      std::uint32_t k = static_cast<std::uint32_t>(slots_[s] >> 32);
      if (k == key || (k == 0 && used_ < limit_)) {
        if (k == 0) ++used_;
        slots_[s] = static_cast<std::uint64_t>(key) << 32 | value;
        return;
      }
      if (k == 0) return;  // full: new keys are not learned
    }
  }

 private:
  std::size_t Hash(std::uint32_t key) const {
    return static_cast<std::size_t>((key * std::uint64_t{0x9E3779B97F4A7C15}) >> 32) & mask_;
  }
  std::vector<std::uint64_t> slots_;
  std::size_t mask_ = 0, limit_ = 0, used_ = 0;
};

X86Predictor::X86Predictor(Level level, std::uint64_t old_size,
                           std::span<const std::uint8_t> elf_head,
                           const std::vector<Control>& controls)
    : level_(level), old_size_(old_size) {
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
  if (level_ != Level::kLearned) return;
  learned_ = std::make_unique<TargetTable>(old_size);
  // PT_LOAD segments of the old file, for RIP-relative targets (virtual addresses).
  elf_head = elf_head.first(std::min(elf_head.size(), kElfHeadBytes));
  if (elf_head.size() < 64) return;
  std::uint64_t phoff = LoadU64(&elf_head[0x20]);
  std::uint16_t phentsize = static_cast<std::uint16_t>(elf_head[0x36] | elf_head[0x37] << 8);
  std::uint16_t phnum = static_cast<std::uint16_t>(elf_head[0x38] | elf_head[0x39] << 8);
  if (phentsize != 56 || phnum > kMaxSegments || phoff > elf_head.size() ||
      phnum * std::uint64_t{56} > elf_head.size() - phoff) {
    return;
  }
  for (std::uint16_t k = 0; k < phnum; ++k) {
    const std::uint8_t* ph = &elf_head[phoff + k * std::uint64_t{56}];
    if ((ph[0] | ph[1] << 8 | ph[2] << 16 | static_cast<std::uint32_t>(ph[3]) << 24) != 1) continue;
    Segment s{LoadU64(ph + 8), LoadU64(ph + 32), LoadU64(ph + 16)};
    std::uint64_t memsz = LoadU64(ph + 40);
    // Addresses are kept below 2^40 so that the arithmetic below cannot overflow.
    if (s.offset >= (std::uint64_t{1} << 40) || s.vaddr >= (std::uint64_t{1} << 40) ||
        s.filesz >= (std::uint64_t{1} << 40) || memsz >= (std::uint64_t{1} << 40) ||
        s.filesz > memsz) {
      continue;
    }
    segments_.push_back(s);
    memsz_.push_back(memsz);
  }
}

X86Predictor::~X86Predictor() = default;

bool X86Predictor::Applies(std::span<const std::uint8_t> old_data) {
  static const std::uint8_t kElf64Le[] = {0x7f, 'E', 'L', 'F', 2, 1};
  return old_data.size() >= 64 && std::memcmp(old_data.data(), kElf64Le, 6) == 0 &&
         old_data[18] == 62 && old_data[19] == 0;  // e_machine EM_X86_64
}

Result<std::unique_ptr<X86Predictor>> X86Predictor::ForApply(Level level, RandomAccessFile& old_file,
                                                             const std::vector<Control>& controls) {
  std::vector<std::uint8_t> head;
  if (level == Level::kLearned) {
    head.resize(static_cast<std::size_t>(std::min<std::uint64_t>(old_file.Size(), kElfHeadBytes)));
    QP_ASSIGN_OR_RETURN(std::size_t got, old_file.ReadAt(0, head));
    head.resize(got);
  }
  return std::make_unique<X86Predictor>(level, old_file.Size(), head, controls);
}

bool X86Predictor::Map(std::uint64_t old_offset, std::uint64_t* new_offset) const {
  auto it = std::upper_bound(blocks_.begin(), blocks_.end(), old_offset,
                             [](std::uint64_t v, const Block& b) { return v < b.old_begin; });
  if (it == blocks_.begin()) return false;
  --it;
  if (old_offset >= it->old_end) return false;
  *new_offset = it->new_begin + (old_offset - it->old_begin);
  return true;
}

bool X86Predictor::OffsetToVaddr(std::uint64_t offset, std::int64_t* vaddr) const {
  for (const Segment& s : segments_) {
    if (offset >= s.offset && offset - s.offset < s.filesz) {
      *vaddr = static_cast<std::int64_t>(s.vaddr + (offset - s.offset));
      return true;
    }
  }
  return false;
}

bool X86Predictor::VaddrToOffset(std::int64_t vaddr, std::uint64_t* offset) const {
  if (vaddr < 0) return false;
  auto v = static_cast<std::uint64_t>(vaddr);
  for (const Segment& s : segments_) {
    if (v >= s.vaddr && v - s.vaddr < s.filesz) {
      *offset = s.offset + (v - s.vaddr);
      return true;
    }
  }
  return false;
}

bool X86Predictor::InImage(std::int64_t vaddr) const {
  if (vaddr < 0) return false;
  auto v = static_cast<std::uint64_t>(vaddr);
  for (std::size_t k = 0; k < segments_.size(); ++k) {
    if (v >= segments_[k].vaddr && v - segments_[k].vaddr < memsz_[k]) return true;
  }
  return false;
}

template <typename Actual>
Status X86Predictor::Walk(std::uint64_t old_at, std::uint64_t new_at, std::span<std::uint8_t> chunk,
                          Actual&& actual) {
  if (chunk.size() > kPredictChunk) {
    return Error(ErrorCode::kInternal, "prediction chunk larger than kPredictChunk");
  }
  const bool learn = level_ == Level::kLearned;
  const std::size_t n = chunk.size();
  std::uint8_t* d = chunk.data();
  for (std::size_t i = 0; i + 5 <= n;) {
    std::size_t disp_at = 0, end = 0;
    bool rip = false;
    if (d[i] == 0xE8 || d[i] == 0xE9) {
      disp_at = i + 1;
      end = i + 5;
    } else if (d[i] == 0x0F && i + 6 <= n && (d[i + 1] & 0xF0) == 0x80) {
      disp_at = i + 2;
      end = i + 6;
    } else if (learn && !segments_.empty() && MatchRipRelative(d, i, n, &disp_at, &end)) {
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
    std::int64_t target = 0;
    bool plausible;
    bool predicted = false;
    std::uint32_t prediction = 0;
    std::uint64_t mapped = 0;
    if (!rip) {
      target = old_end + disp;
      plausible = target >= 0 && static_cast<std::uint64_t>(target) < old_size_;
      if (plausible && Map(static_cast<std::uint64_t>(target), &mapped)) {
        predicted = true;
        prediction = static_cast<std::uint32_t>(mapped);
      }
    } else {
      std::int64_t end_vaddr = 0;
      plausible = OffsetToVaddr(static_cast<std::uint64_t>(old_end), &end_vaddr);
      if (plausible) {
        const std::int64_t shift = end_vaddr - old_end;  // the instruction's segment
        target = end_vaddr + disp;
        new_end += shift;
        plausible = InImage(target);
        std::uint64_t target_offset = 0;
        if (plausible && VaddrToOffset(target, &target_offset) && Map(target_offset, &mapped)) {
          predicted = true;
          prediction = static_cast<std::uint32_t>(
              static_cast<std::int64_t>(mapped) + (target - static_cast<std::int64_t>(target_offset)));
        }
      }
    }
    if (!plausible) {
      // kBranches treats a branch as an instruction only where its target maps.
      ++i;
      continue;
    }
    if (!learn && !predicted) {
      ++i;
      continue;
    }
    std::uint32_t key = 0;
    const bool keyed = learn && TargetTable::Key(target, rip, &key);
    std::uint32_t remembered = 0;
    if (keyed && learned_->Find(key, &remembered)) {
      predicted = true;
      prediction = remembered;
    }
    if (predicted) {
      std::uint32_t new_disp = prediction - static_cast<std::uint32_t>(new_end);
      if (learn || static_cast<std::int64_t>(mapped) - new_end == static_cast<std::int32_t>(new_disp)) {
        StoreI32(d + disp_at, new_disp);
      }
    }
    if (keyed) {
      std::uint32_t actual_target = static_cast<std::uint32_t>(actual(disp_at)) +
                                    static_cast<std::uint32_t>(new_end);
      if (!predicted || actual_target != prediction) learned_->Put(key, actual_target);
    }
    i = end;
  }
  return OkStatus();
}

Status X86Predictor::PredictForDiff(std::uint64_t old_at, std::uint64_t new_at,
                                    std::span<std::uint8_t> chunk,
                                    std::span<const std::uint8_t> new_bytes) {
  return Walk(old_at, new_at, chunk, [&](std::size_t k) { return LoadI32(&new_bytes[k]); });
}

Status X86Predictor::Reconstruct(std::uint64_t old_at, std::uint64_t new_at,
                                 std::span<std::uint8_t> chunk, std::span<const std::uint8_t> diff) {
  QP_RETURN_IF_ERROR(Walk(old_at, new_at, chunk, [&](std::size_t k) {
    std::uint8_t b[4];
    for (int j = 0; j < 4; ++j) b[j] = static_cast<std::uint8_t>(chunk[k + j] + diff[k + j]);
    return LoadI32(b);
  }));
  for (std::size_t k = 0; k < chunk.size(); ++k) chunk[k] = static_cast<std::uint8_t>(chunk[k] + diff[k]);
  return OkStatus();
}

}  // namespace qp::delta
