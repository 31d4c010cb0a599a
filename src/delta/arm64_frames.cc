// Transform 4's prediction of stack-frame offsets, for the AArch64 plug-in (arm64_code.cc).
//
// A compiler that lays a function's frame out anew (GCC 12's fix for CVE-2023-4039 moved
// the frame record above the locals: Debian's libc6 deb12u7 -> deb12u14 changed 1,064 of
// its 2,172 functions that way) moves the offsets of every sp- and x29-based access of
// the function, by a few amounts: one for the callee-saved registers, one for the locals.
// The walk learns those amounts from the new file as it goes: each access is predicted
// from the last shift its old offset showed in the same function, else from the last shift
// of its class (base register, saved register or not), and the new file's word then says
// what the shift was. A prologue starts a new function, and so does a jump of the walk to
// another part of the old file (blocks come in the new file's order): what was learned is
// dropped.
// docs/patch-format.md ("Transform 4") is the exact rule.
#include <cstdint>

#include "delta/byte_io.h"
#include "delta/predictor.h"

namespace qp::delta {
namespace {

// A load, store or address computation on sp or x29 with an immediate offset.
struct FrameAccess {
  enum Kind : std::uint8_t { kSingle, kPair, kArith };
  Kind kind;
  std::uint32_t generic;  // the word without its offset (kSingle, kArith: nor its form)
  std::uint32_t base;     // 29 or 31
  std::int64_t offset;    // in bytes
  int scale;              // log2 of the offset's unit
  bool saved;             // a load or store of a callee-saved register (x19-x30, d8-d15)
};

bool DecodeFrame(std::uint32_t w, FrameAccess* a) {
  const std::uint32_t base = (w >> 5) & 31;
  if (base != 29 && base != 31) return false;
  a->base = base;
  const std::uint32_t vector = (w >> 26) & 1, rt = w & 31;
  a->saved = vector != 0 ? rt >= 8 && rt <= 15 : rt >= 19 && rt <= 30;
  if ((w & 0x3B000000) == 0x39000000 || (w & 0x3B200C00) == 0x38000000) {
    // LDR/STR (unsigned offset: imm12, scaled) or LDUR/STUR (imm9, unscaled): one kind,
    // since a compiler picks the form from the offset.
    a->kind = FrameAccess::kSingle;
    a->generic = w & 0xC4C003FF;
    a->scale = vector != 0 && ((w >> 23) & 1) != 0 ? 4 : static_cast<int>(w >> 30);
    a->offset = (w & 0x01000000) != 0 ? static_cast<std::int64_t>((w >> 10) & 0xFFF) << a->scale
                                      : SignExtend((w >> 12) & 0x1FF, 9);
    return true;
  }
  if ((w & 0x3A000000) == 0x28000000) {  // LDP/STP, any addressing mode
    a->kind = FrameAccess::kPair;
    a->generic = w & ~(std::uint32_t{0x7F} << 15);
    const std::uint32_t opc = w >> 30;
    a->scale = static_cast<int>(vector != 0 ? 2 + opc : 2 + (opc >> 1));
    a->offset = SignExtend((w >> 15) & 0x7F, 7) * (std::int64_t{1} << a->scale);
    return true;
  }
  if ((w & 0x3F800000) == 0x11000000) {  // ADD/SUB (immediate), not setting flags
    a->kind = FrameAccess::kArith;
    a->generic = w & 0x800003FF;
    a->scale = 0;
    a->saved = false;
    const std::int64_t v = static_cast<std::int64_t>((w >> 10) & 0xFFF) << (12 * ((w >> 22) & 1));
    a->offset = (w & 0x40000000) != 0 ? -v : v;
    return true;
  }
  return false;
}

// The access `a` (decoded from `w`) with its offset set to `offset`, in the form a compiler
// would choose; false if no form holds it.
bool EncodeFrame(std::uint32_t w, const FrameAccess& a, std::int64_t offset, std::uint32_t* out) {
  const std::int64_t unit = std::int64_t{1} << a.scale;
  switch (a.kind) {
    case FrameAccess::kSingle: {
      const std::uint32_t form = w & 0xFCC003FF;
      if (offset >= 0 && offset % unit == 0 && (offset >> a.scale) < 4096) {
        *out = form | 0x01000000 | static_cast<std::uint32_t>(offset >> a.scale) << 10;
        return true;
      }
      if (offset >= -256 && offset < 256) {
        *out = form | (static_cast<std::uint32_t>(offset) & 0x1FF) << 12;
        return true;
      }
      return false;
    }
    case FrameAccess::kPair: {
      if (offset % unit != 0) return false;
      const std::int64_t units = offset / unit;
      if (units < -64 || units >= 64) return false;
      *out = a.generic | (static_cast<std::uint32_t>(units) & 0x7F) << 15;
      return true;
    }
    case FrameAccess::kArith: {
      const std::uint32_t form = a.generic | 0x11000000 | (offset < 0 ? 0x40000000u : 0);
      const std::int64_t v = offset < 0 ? -offset : offset;
      if (v < 4096) {
        *out = form | static_cast<std::uint32_t>(v) << 10;
        return true;
      }
      if (v % 4096 == 0 && (v >> 12) < 4096) {
        *out = form | 1u << 22 | static_cast<std::uint32_t>(v >> 12) << 10;
        return true;
      }
      return false;
    }
  }
  return false;
}

// A prologue: STP x29, x30, [sp, #-N]! or SUB sp, sp, #N.
bool StartsFrame(std::uint32_t w) {
  return (w & 0xFFC07FFF) == 0xA9807BFD || (w & 0xFF8003FF) == 0xD10003FF;
}

// How far past the last frame access the walk may go on in the old file and stay in the
// same function.
constexpr std::uint64_t kSameFunction = 4096;

std::size_t SlotOf(std::uint8_t key, std::int64_t offset) {
  const std::uint32_t h = static_cast<std::uint32_t>(offset) * 0x9E3779B1u;
  return ((h >> 26) ^ key) & (FrameLearning::kSlots - 1);
}

}  // namespace

void PredictArm64Frame(Predictor& p, std::span<std::uint8_t> chunk, std::size_t i,
                       std::uint64_t old_offset, std::uint32_t w) {
  FrameLearning& f = p.frames();
  const bool prologue = StartsFrame(w);
  const bool jumped = old_offset < f.last || old_offset - f.last > kSameFunction;
  f.last = old_offset;
  if (prologue || jumped) {
    f.shift = {};
    ++f.epoch;
  }
  FrameAccess a{};
  if (!DecodeFrame(w, &a)) return;
  const auto key = static_cast<std::uint8_t>((a.base == 29 ? 2 : 0) + (a.saved ? 1 : 0));
  FrameLearning::Slot& slot = f.slots[SlotOf(key, a.offset)];
  const bool known = slot.epoch == f.epoch && slot.key == key && slot.old_offset == a.offset;
  const std::int64_t shift = known ? slot.shift : f.shift[key];
  std::uint32_t predicted = w;
  if (shift != 0 && EncodeFrame(w, a, a.offset + shift, &predicted)) {
    StoreLe(chunk.data() + i, predicted, 4);
  }
  const auto now = static_cast<std::uint32_t>(p.Actual(i, 4));
  p.Count(RefKind::kA64Frame, now == predicted);
  // A prologue's own shift is the change of the frame's size, which says nothing of where
  // its slots went.
  FrameAccess b{};
  if (prologue || !DecodeFrame(now, &b) || b.kind != a.kind || b.generic != a.generic ||
      b.base != a.base) {
    return;
  }
  const auto moved = static_cast<std::int32_t>(b.offset - a.offset);
  f.shift[key] = moved;
  slot = FrameLearning::Slot{f.epoch, key, static_cast<std::int32_t>(a.offset), moved};
}

bool NormalizeArm64Frame(std::uint32_t* w) {
  // Pairs and address arithmetic keep their offsets: cleared, they made lookalike
  // prologues and epilogues match each other, and libc6's arm64 patch larger.
  FrameAccess a{};
  if (!DecodeFrame(*w, &a) || a.kind != FrameAccess::kSingle) return false;
  *w = a.generic | 0x38000000;
  return true;
}

}  // namespace qp::delta
