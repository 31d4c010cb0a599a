// The AArch64 plug-in of the predictor. Every instruction is one aligned 32-bit word, and
// its references are PC-relative immediates of a few fixed shapes:
//   B, BL                      imm26 << 2
//   B.cond, CBZ/CBNZ           imm19 << 2
//   TBZ/TBNZ                   imm14 << 2
//   LDR/LDRSW/PRFM (literal)   imm19 << 2
//   ADR                        imm21 (immlo in bits 29-30, immhi in bits 5-23)
//   ADRP                       imm21 << 12, relative to the instruction's 4 KiB page; its
//                              target is completed by a following ADD (immediate) or
//                              LDR/STR (unsigned offset) on the same register, which
//                              holds the low 12 bits.
// Targets are virtual addresses. docs/patch-format.md ("Transform 3") is the exact rule.
#include <cstdint>

#include "core/memory_file.h"
#include "delta/byte_io.h"
#include "delta/predictor.h"

namespace qp::delta {
namespace {

// An immediate field: `bits` bits at bit `lsb`, counting units of 1 << `scale` bytes;
// ADR/ADRP split theirs (two low bits at 29).
struct Immediate {
  int lsb, bits, scale;
  bool split;
};
constexpr Immediate kImm26{0, 26, 2, false};
constexpr Immediate kImm19{5, 19, 2, false};
constexpr Immediate kImm14{5, 14, 2, false};
constexpr Immediate kAdr{5, 21, 0, true};
constexpr Immediate kAdrp{5, 21, 12, true};

// The field's bits as stored (`bits` wide, unsigned), and w with them replaced.
std::uint32_t RawField(std::uint32_t w, const Immediate& f) {
  if (f.split) return ((w >> 5) & 0x7FFFF) << 2 | ((w >> 29) & 3);
  return (w >> f.lsb) & ((std::uint32_t{1} << f.bits) - 1);
}
std::uint32_t WithRawField(std::uint32_t w, const Immediate& f, std::uint32_t raw) {
  raw &= (std::uint32_t{1} << f.bits) - 1;
  if (f.split) {
    return (w & ~((std::uint32_t{3} << 29) | (std::uint32_t{0x7FFFF} << 5))) | (raw & 3) << 29 |
           (raw >> 2) << 5;
  }
  const std::uint32_t mask = ((std::uint32_t{1} << f.bits) - 1) << f.lsb;
  return (w & ~mask) | raw << f.lsb;
}

std::int64_t Decode(std::uint32_t w, const Immediate& f) {
  return SignExtend(RawField(w, f), f.bits) * (std::int64_t{1} << f.scale);
}

// Writes `value` into w's field; false (w unchanged) if it is not a whole number of units
// or does not fit.
bool Encode(std::uint32_t* w, std::int64_t value, const Immediate& f) {
  const std::int64_t unit = std::int64_t{1} << f.scale;
  if (value % unit != 0) return false;
  const std::int64_t units = value / unit;
  const std::int64_t limit = std::int64_t{1} << (f.bits - 1);
  if (units < -limit || units >= limit) return false;
  *w = WithRawField(*w, f, static_cast<std::uint32_t>(static_cast<std::uint64_t>(units)));
  return true;
}

// The PC-relative instructions, by kind; false for any other word.
bool Classify(std::uint32_t w, RefKind* kind, const Immediate** imm) {
  if ((w & 0x7C000000) == 0x14000000) {  // B, BL
    *kind = RefKind::kA64Branch;
    *imm = &kImm26;
  } else if ((w & 0xFF000010) == 0x54000000 || (w & 0x7E000000) == 0x34000000) {
    *kind = RefKind::kA64CondBranch;  // B.cond, CBZ/CBNZ
    *imm = &kImm19;
  } else if ((w & 0x7E000000) == 0x36000000) {  // TBZ/TBNZ
    *kind = RefKind::kA64CondBranch;
    *imm = &kImm14;
  } else if ((w & 0x3B000000) == 0x18000000) {  // LDR (literal), LDRSW, PRFM
    *kind = RefKind::kA64Literal;
    *imm = &kImm19;
  } else if ((w & 0x9F000000) == 0x10000000) {
    *kind = RefKind::kA64Adr;
    *imm = &kAdr;
  } else if ((w & 0x9F000000) == 0x90000000) {
    *kind = RefKind::kA64AdrpPair;
    *imm = &kAdrp;
  } else {
    return false;
  }
  return true;
}

// The low half of an ADRP pair: ADD Xd, Xn, #imm12 (64-bit, unshifted), or a load or store
// with an unsigned scaled offset, whose base register Xn is `reg`. Sets the scale of its
// 12-bit immediate; false for any other word.
bool LowHalf(std::uint32_t w, std::uint32_t reg, int* scale) {
  if (((w >> 5) & 31) != reg) return false;
  if ((w & 0xFFC00000) == 0x91000000) {
    *scale = 0;
    return true;
  }
  if ((w & 0x3B000000) == 0x39000000) {
    const std::uint32_t size = w >> 30, vector = (w >> 26) & 1, opc = (w >> 22) & 3;
    *scale = vector != 0 && (opc & 2) != 0 ? 4 : static_cast<int>(size);
    return true;
  }
  return false;
}

std::uint32_t Imm12(std::uint32_t w) { return (w >> 10) & 0xFFF; }

// How many instructions after an ADRP its first low half is looked for, and how many its
// page stays usable for further low halves on the same register.
constexpr std::size_t kPairWindow = 8;
constexpr std::size_t kPageLife = 16;

// What an ADRP left in its register, as the walk goes on: its old page, the page the new
// file's ADRP holds, and (until its first low half is reached) the prediction made for the
// pair.
struct PageRegister {
  bool valid = false;
  std::int64_t old_page = 0, new_page = 0;
  std::size_t expires = 0;       // chunk position past which it is no longer used
  std::size_t first = SIZE_MAX;  // the first low half's position, while pending
  Predictor::Choice choice;      // the pair's prediction, for the first low half
};

}  // namespace

void WalkArm64Code(Predictor& p, const CodeSpan& span) {
  const ElfLayout& layout = p.layout();
  if (!p.learning() || layout.segments().empty()) return;
  std::uint8_t* d = span.chunk.data();
  const bool frames = p.transform() == Transform::kArm64Frames;
  PageRegister regs[32];
  auto clear = [&] {
    for (PageRegister& r : regs) r.valid = false;
  };
  // Instructions are 4-byte aligned in the file as in memory.
  std::size_t i = span.from + static_cast<std::size_t>((4 - (span.old_at + span.from) % 4) % 4);
  std::uint64_t code_end = 0;  // where the current run of code (or not code) ends
  bool in_code = false;
  for (; i + 4 <= span.to; i += 4) {
    const std::uint64_t old_offset = span.old_at + i;
    if (old_offset >= code_end) in_code = layout.CodeAt(old_offset, &code_end);
    if (!in_code || old_offset + 4 > code_end) continue;
    std::uint32_t w = static_cast<std::uint32_t>(LoadLe(d + i, 4));
    std::int64_t pc = 0;
    if (!layout.OffsetToVaddr(old_offset, &pc)) continue;
    // The instruction's segment keeps its placement: its new address is its new offset
    // moved as its old one was.
    const std::int64_t new_pc =
        static_cast<std::int64_t>(span.new_at + i) + (pc - static_cast<std::int64_t>(old_offset));
    RefKind kind{};
    const Immediate* imm = nullptr;
    if (!Classify(w, &kind, &imm)) {
      // A low half using a page register: its target is the page plus its 12 bits.
      PageRegister& r = regs[(w >> 5) & 31];
      int scale = 0;
      const bool low_half = r.valid && i < r.expires && LowHalf(w, (w >> 5) & 31, &scale);
      if (!low_half && frames) PredictArm64Frame(p, span.chunk, i, old_offset, w);
      if (low_half) {
        const std::int64_t target = r.old_page + (static_cast<std::int64_t>(Imm12(w)) << scale);
        Predictor::Choice choice;
        bool predicted = false;
        if (i == r.first) {
          choice = r.choice;
          predicted = choice.predicted;
        } else if (layout.InImage(target)) {
          predicted = p.ChooseVaddr(target, &choice);
        }
        if (i == r.first || layout.InImage(target)) {
          const std::int64_t lo = choice.prediction - r.new_page;
          if (predicted && lo >= 0 && lo < 0x1000 && (lo & ((std::int64_t{1} << scale) - 1)) == 0) {
            w = (w & ~(std::uint32_t{0xFFF} << 10)) | static_cast<std::uint32_t>(lo >> scale) << 10;
            StoreLe(d + i, w, 4);
          }
          const auto now = static_cast<std::uint32_t>(p.Actual(i, 4));
          p.Learn(RefKind::kA64AdrpPair, choice,
                  static_cast<std::uint32_t>(r.new_page) + (Imm12(now) << scale),
                  /*remember=*/true);
        }
        r.first = SIZE_MAX;
      }
      // Whatever writes a page register ends its use.
      if (regs[w & 31].valid && (w & 31) != 31) regs[w & 31].valid = false;
      continue;
    }
    if (kind == RefKind::kA64Branch) clear();  // calls clobber registers; jumps leave
    if (kind == RefKind::kA64AdrpPair) {
      const std::uint32_t reg = w & 31;
      PageRegister& r = regs[reg];
      r = PageRegister{};
      r.old_page = (pc & ~std::int64_t{0xFFF}) + Decode(w, *imm);
      // The pair's target, from its first low half (read, not yet rewritten).
      std::int64_t target = r.old_page;
      for (std::size_t j = i + 4; j + 4 <= span.to && j <= i + 4 * kPairWindow; j += 4) {
        const auto v = static_cast<std::uint32_t>(LoadLe(d + j, 4));
        int scale = 0;
        if (LowHalf(v, reg, &scale)) {
          r.first = j;
          target += static_cast<std::int64_t>(Imm12(v)) << scale;
          break;
        }
        RefKind other{};
        const Immediate* other_imm = nullptr;
        if ((v & 31) == reg || (Classify(v, &other, &other_imm) && other == RefKind::kA64Branch)) {
          break;
        }
      }
      const std::int64_t new_page = new_pc & ~std::int64_t{0xFFF};
      if (r.first != SIZE_MAX && layout.InImage(target)) {
        if (p.ChooseVaddr(target, &r.choice) &&
            Encode(&w, (r.choice.prediction & ~std::int64_t{0xFFF}) - new_page, *imm)) {
          StoreLe(d + i, w, 4);
        }
      } else {
        r.first = SIZE_MAX;
      }
      const auto now = static_cast<std::uint32_t>(p.Actual(i, 4));
      r.new_page = new_page + Decode(now, *imm);
      r.valid = true;
      r.expires = i + 4 * kPageLife;
      continue;
    }
    const std::int64_t target = pc + Decode(w, *imm);
    if (!layout.InImage(target)) continue;
    Predictor::Choice choice;
    // A local branch into code that matched nowhere keeps its distance: the code between
    // it and its target changed, by an unknown amount.
    if (p.ChooseVaddr(target, &choice, /*ahead=*/kind != RefKind::kA64CondBranch) &&
        Encode(&w, choice.prediction - new_pc, *imm)) {
      StoreLe(d + i, w, 4);
    }
    const auto now = static_cast<std::uint32_t>(p.Actual(i, 4));
    p.Learn(kind, choice, static_cast<std::uint32_t>(new_pc + Decode(now, *imm)),
            /*remember=*/kind != RefKind::kA64CondBranch);
    if ((w & 31) != 31 && kind == RefKind::kA64Adr) regs[w & 31].valid = false;
  }
}

void Arm64Literals(const ElfLayout& layout, std::uint64_t new_at, std::span<std::uint8_t> bytes,
                   bool to_stored) {
  std::uint64_t code_end = 0;
  bool in_code = false;
  const std::uint64_t end = new_at + bytes.size();
  for (std::uint64_t at = (new_at + 3) & ~std::uint64_t{3}; at + 4 <= end; at += 4) {
    if (at >= code_end) in_code = layout.CodeAt(at, &code_end);
    std::int64_t pc = 0;
    if (!in_code || at + 4 > code_end || !layout.OffsetToVaddr(at, &pc)) continue;
    std::uint8_t* q = bytes.data() + (at - new_at);
    const auto w = static_cast<std::uint32_t>(LoadLe(q, 4));
    // A branch's target in units of 4 bytes, or a page's number: the same wherever the
    // same function or page is referred to from.
    const Immediate* f = (w & 0x7C000000) == 0x14000000   ? &kImm26  // B, BL
                         : (w & 0x9F000000) == 0x90000000 ? &kAdrp   // ADRP
                                                          : nullptr;
    if (f == nullptr) continue;
    const auto base = static_cast<std::uint32_t>(pc >> f->scale);
    const std::uint32_t raw = RawField(w, *f);
    StoreLe(q, WithRawField(w, *f, to_stored ? raw + base : raw - base), 4);
  }
}

std::vector<std::uint8_t> NormalizeArm64Code(std::span<const std::uint8_t> data,
                                             std::uint64_t begin, std::uint64_t end) {
  end = std::min<std::uint64_t>(end, data.size());
  begin = std::min(begin, end);
  std::vector<std::uint8_t> out(data.begin() + static_cast<std::ptrdiff_t>(begin),
                                data.begin() + static_cast<std::ptrdiff_t>(end));
  MemoryFile file(data);
  auto layout = ElfLayout::Read(file, 0, /*code=*/true);
  if (!layout.ok()) return out;  // a memory file has no I/O errors; nothing to normalize
  std::uint64_t code_end = 0;
  bool in_code = false;
  // Instructions lie at multiples of 4; words that straddle the copy's ends stay as they are.
  for (std::uint64_t at = (begin + 3) & ~std::uint64_t{3}; at + 4 <= end; at += 4) {
    if (at >= code_end) in_code = layout->CodeAt(at, &code_end);
    if (!in_code || at + 4 > code_end) continue;
    auto w = static_cast<std::uint32_t>(LoadLe(&data[at], 4));
    RefKind kind{};
    const Immediate* imm = nullptr;
    if (!Classify(w, &kind, &imm)) {
      if (NormalizeArm64Frame(&w)) StoreLe(&out[at - begin], w, 4);
      continue;
    }
    std::int64_t pc = 0;
    std::uint64_t callee = 0;
    if (kind == RefKind::kA64Branch && layout->OffsetToVaddr(at, &pc) &&
        layout->VaddrToOffset(pc + Decode(w, *imm), &callee) && callee + 8 <= data.size()) {
      // A call keeps the identity of what it calls: the callee's first two instructions
      // (normalized), hashed into the immediate.
      std::uint32_t h = 2166136261u;
      for (int k = 0; k < 2; ++k) {
        auto v = static_cast<std::uint32_t>(
            LoadLe(&data[callee + 4 * static_cast<std::uint64_t>(k)], 4));
        RefKind vk{};
        const Immediate* vi = nullptr;
        if (Classify(v, &vk, &vi)) Encode(&v, 0, *vi);
        h = (h ^ v) * 16777619u;
      }
      w = (w & ~std::uint32_t{0x3FFFFFF}) | (h & 0x3FFFFFF);
      StoreLe(&out[at - begin], w, 4);
    } else if (Encode(&w, 0, *imm)) {
      StoreLe(&out[at - begin], w, 4);
    }
  }
  return out;
}

}  // namespace qp::delta
