// The x86-64 plug-in of the predictor: relative calls and jumps (E8, E9, 0F 80..8F), and
// instructions with a RIP-relative memory operand, recognised by byte patterns (no full
// decoder). docs/patch-format.md ("Transform 2") has the exact tables.
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>

#include "core/memory_file.h"
#include "delta/byte_io.h"
#include "delta/predictor.h"

namespace qp::delta {
namespace {

// Immediate bytes after the displacement of a one-byte-opcode instruction with a ModRM
// operand, or -1 for opcodes not predicted. `reg` is the ModRM reg field (groups F6/F7).
constexpr int OneByteImmediate(std::uint8_t op, int reg) {
  if (op < 0x40 && (op & 7) < 4) return 0;  // ALU r/m,r and r,r/m forms (add ... cmp)
  switch (op) {
    case 0x63:
    case 0x84:
    case 0x85:
    case 0x86:
    case 0x87:
    case 0x88:
    case 0x89:
    case 0x8A:
    case 0x8B:
    case 0x8D:
    case 0xD1:
    case 0xD3:
    case 0xFF:
      return 0;
    case 0x80:
    case 0x83:
    case 0xC6:
    case 0x6B:
    case 0xC0:
    case 0xC1:
      return 1;
    case 0x81:
    case 0xC7:
    case 0x69:
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
constexpr int TwoByteImmediate(std::uint8_t op) {
  if ((op >= 0x10 && op <= 0x17) || op == 0x28 || op == 0x29 || op == 0x2A ||
      (op >= 0x2C && op <= 0x2F) || (op >= 0x40 && op <= 0x4F) || (op >= 0x51 && op <= 0x6F) ||
      (op >= 0x74 && op <= 0x76) || op == 0x7E || op == 0x7F || op == 0xAF || op == 0xB6 ||
      op == 0xB7 || op == 0xBE || op == 0xBF || (op >= 0xD0 && op <= 0xFE)) {
    return 0;
  }
  if (op == 0x70 || op == 0xC2 || op == 0xC4 || op == 0xC5 || op == 0xC6) return 1;
  return -1;
}

// The two functions above as tables (the walk asks at most bytes), and whether a byte can
// begin such an instruction at all (a prefix, REX, 0F, or a one-byte opcode of the table).
// F6 and F7 depend on ModRM's reg field: kOne holds -2 for them.
struct OpcodeTables {
  std::int8_t one[256] = {}, two[256] = {};
  bool first[256] = {};
  constexpr OpcodeTables() {
    for (int b = 0; b < 256; ++b) {
      const auto op = static_cast<std::uint8_t>(b);
      one[b] = static_cast<std::int8_t>(op == 0xF6 || op == 0xF7 ? -2 : OneByteImmediate(op, 0));
      two[b] = static_cast<std::int8_t>(TwoByteImmediate(op));
      first[b] = op == 0x66 || op == 0xF2 || op == 0xF3 || (op & 0xF0) == 0x40 || op == 0x0F ||
                 one[b] != -1;
    }
  }
};
constexpr OpcodeTables kOpcodes;

// An instruction with a RIP-relative operand starting at d[i]: an optional 66/F2/F3
// prefix, an optional REX prefix, a one- or two-byte opcode from the tables, ModRM with
// mod=00 rm=101, disp32, immediate. Sets the displacement's position and the instruction's
// end; false if none, or if it does not end inside [0, n).
bool MatchRipRelative(const std::uint8_t* d, std::size_t i, std::size_t n, std::size_t* disp_at,
                      std::size_t* end) {
  if (i >= n || !kOpcodes.first[d[i]]) return false;
  std::size_t j = i;
  if (j < n && (d[j] == 0x66 || d[j] == 0xF2 || d[j] == 0xF3)) ++j;
  if (j < n && (d[j] & 0xF0) == 0x40) ++j;
  if (j + 2 > n) return false;
  int imm;
  if (d[j] == 0x0F) {
    imm = kOpcodes.two[d[j + 1]];
    j += 2;
  } else {
    if (j + 1 >= n) return false;
    imm = kOpcodes.one[d[j]];
    if (imm == -2) imm = OneByteImmediate(d[j], (d[j + 1] >> 3) & 7);
    j += 1;
  }
  if (imm < 0 || j >= n || (d[j] & 0xC7) != 0x05) return false;
  std::size_t e = j + 5 + static_cast<std::size_t>(imm);
  if (e > n) return false;
  *disp_at = j + 1;
  *end = e;
  return true;
}

// What the walk looks for, by byte: one that begins a branch (E8, E9, 0F), and a ModRM byte
// with mod=00 rm=101 (a RIP-relative operand's, which sits 1 to 4 bytes after the start of
// its instruction).
constexpr std::uint8_t kBranchStart = 1, kRipModrm = 2;
struct ScanTable {
  std::uint8_t kind[256] = {};
  constexpr ScanTable() {
    kind[0xE8] = kind[0xE9] = kind[0x0F] = kBranchStart;
    for (int b = 0; b < 256; ++b) {
      if ((b & 0xC7) == 0x05) kind[b] |= kRipModrm;
    }
  }
};
constexpr ScanTable kScan;

// The first position p >= i (with p + 5 <= to) where the walk could find an instruction:
// d[p] begins a branch, or (`rip`) one of d[p+1..p+4] is a RIP-relative ModRM byte. Every
// position before it fails every test of the walk, so skipping them changes nothing.
std::size_t NextCandidate(const std::uint8_t* d, std::size_t i, std::size_t to, bool rip) {
  if (i + 5 > to) return to;
  if (rip && ((kScan.kind[d[i + 1]] | kScan.kind[d[i + 2]] | kScan.kind[d[i + 3]]) & kRipModrm)) {
    return i;
  }
  // Past i, only d[p+4] is new in p's window: the older bytes were in p-1's, which held none.
  std::size_t p = i;
#if defined(__SSE2__)
  // Sixteen positions at a time (p + 15 + 5 <= to).
  const __m128i e8 = _mm_set1_epi8(static_cast<char>(0xE8));
  const __m128i e9 = _mm_set1_epi8(static_cast<char>(0xE9));
  const __m128i of = _mm_set1_epi8(0x0F);
  const __m128i c7 = _mm_set1_epi8(static_cast<char>(0xC7));
  const __m128i five = _mm_set1_epi8(0x05);
  for (; p + 20 <= to; p += 16) {
    const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + p));
    __m128i m = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, e8), _mm_cmpeq_epi8(x, e9)),
                             _mm_cmpeq_epi8(x, of));
    if (rip) {
      const __m128i y = _mm_loadu_si128(reinterpret_cast<const __m128i*>(d + p + 4));
      m = _mm_or_si128(m, _mm_cmpeq_epi8(_mm_and_si128(y, c7), five));
    }
    if (const int bits = _mm_movemask_epi8(m); bits != 0) {
      return p + static_cast<std::size_t>(__builtin_ctz(static_cast<unsigned>(bits)));
    }
  }
#endif
  for (; p + 5 <= to; ++p) {
    if ((kScan.kind[d[p]] & kBranchStart) != 0) return p;
    if (rip && (kScan.kind[d[p + 4]] & kRipModrm) != 0) return p;
  }
  return to;
}

}  // namespace

void WalkX86Code(Predictor& p, const CodeSpan& span) {
  const bool learn = p.learning();
  const ElfLayout& layout = p.layout();
  const std::uint64_t old_at = span.old_at, new_at = span.new_at;
  const std::size_t to = span.to;
  std::uint8_t* d = span.chunk.data();
  const bool rip_operands = learn && !layout.segments().empty();
  for (std::size_t i = span.from; i + 5 <= to;) {
    i = NextCandidate(d, i, to, rip_operands);
    if (i + 5 > to) break;
    std::size_t disp_at = 0, end = 0;
    bool rip = false;
    if (d[i] == 0xE8 || d[i] == 0xE9) {
      disp_at = i + 1;
      end = i + 5;
    } else if (d[i] == 0x0F && i + 6 <= to && (d[i + 1] & 0xF0) == 0x80) {
      disp_at = i + 2;
      end = i + 6;
    } else if (rip_operands && MatchRipRelative(d, i, to, &disp_at, &end)) {
      rip = true;
    } else {
      ++i;
      continue;
    }
    const auto disp = static_cast<std::int32_t>(LoadLe(d + disp_at, 4));
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
      plausible = target >= 0 && static_cast<std::uint64_t>(target) < p.old_size();
      std::uint64_t mapped = 0;
      if (plausible && p.Map(static_cast<std::uint64_t>(target), &mapped, &index)) {
        have_block = true;
        block = static_cast<std::int64_t>(mapped);
      }
    } else {
      std::int64_t end_vaddr = 0;
      if (layout.OffsetToVaddr(static_cast<std::uint64_t>(old_end), &end_vaddr)) {
        new_end += end_vaddr - old_end;  // the instruction's segment keeps its placement
        target = end_vaddr + disp;
        plausible = layout.InImage(target);
        have_block = plausible && p.MapVaddr(target, &block, &index);
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
        StoreLe(d + disp_at, static_cast<std::uint32_t>(new_disp), 4);
      }
      i = end;
      continue;
    }
    Predictor::Choice choice;
    if (p.Choose(target, rip, have_block, block, index, &choice)) {
      StoreLe(d + disp_at, static_cast<std::uint32_t>(choice.prediction - new_end), 4);
    }
    p.Learn(rip ? RefKind::kX86Rip : RefKind::kX86Branch, choice,
            static_cast<std::uint32_t>(p.Actual(disp_at, 4)) + static_cast<std::uint32_t>(new_end),
            /*remember=*/true);
    i = end;
  }
}

std::vector<std::uint8_t> NormalizeX86Code(std::span<const std::uint8_t> data, std::uint64_t begin,
                                           std::uint64_t end) {
  end = std::min<std::uint64_t>(end, data.size());
  begin = std::min(begin, end);
  std::vector<std::uint8_t> out(data.begin() + static_cast<std::ptrdiff_t>(begin),
                                data.begin() + static_cast<std::ptrdiff_t>(end));
  MemoryFile file(data);
  auto layout = ElfLayout::Read(file, 0, /*code=*/true);
  if (!layout.ok()) return out;  // a memory file has no I/O errors; nothing to normalize
  const std::uint8_t* d = data.data();
  std::uint64_t code_end = 0;
  bool in_code = false;
  for (std::size_t i = static_cast<std::size_t>(begin); i < end && i + 5 <= data.size();) {
    if (i >= code_end) in_code = layout->CodeAt(i, &code_end);
    if (!in_code) {
      i = static_cast<std::size_t>(std::min<std::uint64_t>(code_end, data.size()));
      continue;
    }
    const std::size_t to = static_cast<std::size_t>(std::min<std::uint64_t>(code_end, data.size()));
    std::size_t disp_at = 0, next = 0;
    bool call = false;
    if (d[i] == 0xE8 || d[i] == 0xE9) {
      disp_at = i + 1;
      next = i + 5;
      call = d[i] == 0xE8;
    } else if (d[i] == 0x0F && i + 6 <= to && (d[i + 1] & 0xF0) == 0x80) {
      disp_at = i + 2;
      next = i + 6;
    } else if (!MatchRipRelative(d, i, to, &disp_at, &next)) {
      ++i;
      continue;
    }
    if (next > to) {
      ++i;
      continue;
    }
    const auto disp = static_cast<std::int32_t>(LoadLe(d + disp_at, 4));
    const std::int64_t target = static_cast<std::int64_t>(next) + disp;
    std::uint32_t value = 0;
    if (call && target >= 0 && static_cast<std::uint64_t>(target) + 8 <= data.size()) {
      // A call keeps the identity of what it calls: the callee's first 8 bytes, hashed.
      std::uint32_t h = 2166136261u;
      for (int k = 0; k < 8; ++k) h = (h ^ d[static_cast<std::size_t>(target) + k]) * 16777619u;
      value = h;
    }
    // The field may straddle the end of the copy.
    for (std::size_t k = 0; k < 4 && disp_at + k < end; ++k) {
      out[disp_at + k - begin] = static_cast<std::uint8_t>(value >> (8 * k));
    }
    i = next;
  }
  return out;
}

}  // namespace qp::delta
