// The AArch64 plug-in of the predictor, on synthetic code whose every reference is known:
// a program is assembled twice, before and after code was inserted and its data moved, and
// the predictor must foresee the new references from the old ones.
#include <gtest/gtest.h>

#include <random>

#include "core/memory_file.h"
#include "delta/byte_io.h"
#include "delta/file_delta.h"
#include "delta/file_delta_format.h"
#include "delta/predictor.h"
#include "delta/predictor_testing.h"

namespace qp::delta {
namespace {

using Bytes = std::vector<std::uint8_t>;

// One instruction slot of the program: filler, or a reference.
struct Slot {
  enum Kind { kFiller, kCall, kCondBranch, kAddrAdd, kAddrLoad, kAdr, kLowHalf } kind;
  std::uint32_t word = 0;  // filler
  std::size_t target = 0;  // kCall / kCondBranch / kAdr: a slot index; else a data offset
  std::uint32_t reg = 0;   // the address register
};

constexpr std::uint64_t kTextOffset = 0x1000;

std::uint32_t Bits(std::int64_t v, int bits) {
  return static_cast<std::uint32_t>(static_cast<std::uint64_t>(v)) & ((1u << bits) - 1);
}

// Assembles `slots` at kTextOffset (offset == address), with `insert` filler words after
// slot `at`, and the data at file offset `data_off`, address `data_vaddr`. An ADRP pair
// takes two slots (the second is its low half).
Bytes Assemble(const std::vector<Slot>& slots, std::size_t at, std::size_t insert,
               std::uint64_t data_off, std::uint64_t data_vaddr, std::size_t size) {
  Bytes out(size, 0);
  WriteElfHeader(out, {{0, 0, data_off}, {data_off, data_vaddr, size - data_off}}, kEmAarch64);
  auto addr = [&](std::size_t slot) {
    return static_cast<std::int64_t>(kTextOffset + 4 * (slot + (slot > at ? insert : 0)));
  };
  auto put = [&](std::size_t slot, std::uint32_t w) {
    StoreLe(&out[static_cast<std::size_t>(addr(slot))], w, 4);
  };
  for (std::size_t k = 0; k < insert; ++k)
    StoreLe(&out[static_cast<std::size_t>(addr(at) + 4 + 4 * static_cast<std::int64_t>(k))],
            0xD503201F, 4);  // NOP
  for (std::size_t s = 0; s < slots.size(); ++s) {
    const Slot& x = slots[s];
    const std::int64_t pc = addr(s);
    switch (x.kind) {
      case Slot::kFiller:
        put(s, x.word);
        break;
      case Slot::kLowHalf:  // written with its ADRP
        break;
      case Slot::kCall:  // BL
        put(s, 0x94000000 | Bits((addr(x.target) - pc) / 4, 26));
        break;
      case Slot::kCondBranch:  // CBZ x3
        put(s, 0xB4000003 | Bits((addr(x.target) - pc) / 4, 19) << 5);
        break;
      case Slot::kAdr:  // ADR x(reg)
        put(s, 0x10000000 | x.reg | Bits(addr(x.target) - pc, 2) << 29 |
                   Bits((addr(x.target) - pc) >> 2, 19) << 5);
        break;
      case Slot::kAddrAdd:
      case Slot::kAddrLoad: {
        const std::int64_t target = static_cast<std::int64_t>(data_vaddr + x.target);
        const std::int64_t pages = (target >> 12) - (pc >> 12);
        put(s, 0x90000000 | x.reg | Bits(pages, 2) << 29 | Bits(pages >> 2, 19) << 5);
        const std::uint32_t lo = static_cast<std::uint32_t>(target & 0xFFF);
        put(s + 1, x.kind == Slot::kAddrAdd
                       ? 0x91000000 | lo << 10 | x.reg << 5 | x.reg      // ADD x, x, #lo
                       : 0xF9400000 | (lo / 8) << 10 | x.reg << 5 | 1);  // LDR x1, [x, #lo]
        break;
      }
    }
  }
  return out;
}

struct Program {
  std::vector<Slot> slots;
  std::size_t calls = 0, pairs = 0;
};

Program MakeProgram(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  Program p;
  p.slots.resize(n, Slot{Slot::kFiller});
  for (std::size_t s = 0; s < n; ++s) {
    // Filler: ADD (shifted register) with random registers: no reference in it.
    p.slots[s].word = 0x8B000000 | (rng() & 0x1F) | (rng() & 0x1F) << 5 | (rng() & 0x1F) << 16;
  }
  for (std::size_t s = 16; s + 2 < n; s += 3 + rng() % 6) {
    Slot& x = p.slots[s];
    switch (rng() % 5) {
      case 0:
      case 1:
        x = Slot{Slot::kCall, 0, (rng() % (n / 64)) * 64, 0};  // to a function start
        ++p.calls;
        break;
      case 2: {
        const bool load = rng() % 2 == 0;
        x = Slot{load ? Slot::kAddrLoad : Slot::kAddrAdd, 0, (rng() % 0x6000) & ~std::size_t{7},
                 static_cast<std::uint32_t>(rng() % 8)};
        ++p.pairs;
        p.slots[++s].kind = Slot::kLowHalf;
        break;
      }
      case 3:
        x = Slot{Slot::kCondBranch, 0, s + 8 + rng() % 40, 0};
        break;
      default:
        x = Slot{Slot::kAdr, 0, s + 4 + rng() % 40, static_cast<std::uint32_t>(rng() % 8)};
        break;
    }
  }
  return p;
}

TEST(Arm64PredictorTest, ReferencesFollowInsertedCodeAndMovedData) {
  // 40,000 instructions; 2 KiB of code inserted at a third, which moves what follows,
  // the data segment too (its address 64 KiB above its offset, as the linker places it).
  const std::size_t n = 40000, size = 0x40000, data_off = 0x30000;
  Program prog = MakeProgram(n, 21);
  Bytes old_data = Assemble(prog.slots, n, 0, data_off, data_off + 0x10000, size);
  Bytes new_data =
      Assemble(prog.slots, n / 3, 512, data_off + 0x800, data_off + 0x10800, size + 0x800);
  ASSERT_EQ(TransformFor(old_data), Transform::kArm64Frames);

  // The matcher's blocks: the text before and after the insertion, then the rest.
  const std::uint64_t cut = kTextOffset + 4 * (n / 3 + 1);
  std::vector<Control> blocks = {Control{cut, 2048, 0},
                                 Control{size - cut, 0, static_cast<std::int64_t>(cut)}};
  PredictionStats stats;
  std::size_t left = PredictedDifferences(Transform::kArm64, old_data, new_data, blocks, &stats);
  std::size_t before = 0;
  for (std::size_t i = 0; i < size; ++i) before += old_data[i] != new_data[i < cut ? i : i + 2048];
  auto kind = [&](RefKind k) { return static_cast<std::size_t>(k); };

  // Every call and every ADRP pair is foreseen; nothing is left but the ELF header's
  // segment fields, which prediction does not touch.
  EXPECT_EQ(stats.miss[kind(RefKind::kA64Branch)], 0u);
  EXPECT_EQ(stats.hit[kind(RefKind::kA64Branch)], prog.calls);
  EXPECT_EQ(stats.miss[kind(RefKind::kA64AdrpPair)], 0u);
  EXPECT_EQ(stats.hit[kind(RefKind::kA64AdrpPair)], prog.pairs);
  EXPECT_GT(stats.hit[kind(RefKind::kA64CondBranch)], 0u);
  EXPECT_GT(stats.hit[kind(RefKind::kA64Adr)], 0u);
  EXPECT_GT(before, 3000u);  // the references the move changed
  EXPECT_LT(left, 16u) << "of " << before;

  // The whole engine: transform 4, and far smaller than without prediction; transform 3
  // (what format 3 and 4 patches hold) can still be made, and applies.
  FileDiffOptions with, without, level3;
  with.compress.lzma_extreme = without.compress.lzma_extreme = false;
  without.executable_transform = false;
  level3 = with;
  level3.arm64_level = kTransformArm64;
  auto p4 = DiffFile(old_data, new_data, with);
  auto p3 = DiffFile(old_data, new_data, level3);
  auto p0 = DiffFile(old_data, new_data, without);
  ASSERT_TRUE(p4.ok() && p3.ok() && p0.ok());
  EXPECT_EQ((*p4)[0], kTransformArm64Frames);
  EXPECT_EQ((*p3)[0], kTransformArm64);
  EXPECT_EQ((*p0)[0], kTransformNone);
  for (const auto* p : {&*p4, &*p3}) {
    auto rebuilt = ApplyFileDeltaToMemory(old_data, *p);
    ASSERT_TRUE(rebuilt.ok()) << rebuilt.error().ToString();
    EXPECT_TRUE(*rebuilt == new_data);
    EXPECT_LT(p->size() * 4, p0->size()) << p->size() << " vs " << p0->size();
  }
  level3.arm64_level = 5;
  EXPECT_EQ(DiffFile(old_data, new_data, level3).error().code(), ErrorCode::kInvalidArgument);
}

TEST(Arm64PredictorTest, ImmediatesThatCannotHoldThePredictionAreLeftAlone) {
  // A CBZ (reach 1 MiB) aims at 0x1100 and a BL (128 MiB) at 0x1180, which the blocks move
  // 2 MiB on, while the new file keeps both instructions as they were. The BL takes the
  // prediction (and misses); the CBZ cannot hold it and is left alone: no difference.
  Bytes old_data(0x1200, 0);
  WriteElfHeader(old_data, {{0, 0, 0x1200}}, kEmAarch64);
  StoreLe(&old_data[0x1000], 0xB4000003 | Bits(0x40, 19) << 5, 4);  // CBZ x3, 0x1100
  StoreLe(&old_data[0x1004], 0x94000000 | Bits(0x5F, 26), 4);       // BL 0x1180
  Bytes new_data(old_data.begin(), old_data.begin() + 0x1100);
  new_data.resize(0x200000, 0);
  new_data.insert(new_data.end(), old_data.begin() + 0x1100, old_data.end());
  std::vector<Control> blocks = {Control{0x1100, 0x200000 - 0x1100, 0}, Control{0x40, 0, 0x1100},
                                 Control{0xC0, 0, 0x1140}};
  PredictionStats stats;
  std::size_t left = PredictedDifferences(Transform::kArm64, old_data, new_data, blocks, &stats);
  EXPECT_EQ(stats.miss[static_cast<std::size_t>(RefKind::kA64CondBranch)], 1u);
  EXPECT_EQ(stats.miss[static_cast<std::size_t>(RefKind::kA64Branch)], 1u);
  EXPECT_GE(left, 1u);  // the BL's misprediction
  EXPECT_LE(left, 4u);  // and nothing of the CBZ's
}

TEST(Arm64PredictorTest, NormalizedCallsKeepTheirCallee) {
  // The matcher's view of code: a call is known by what it calls, not by how far away that
  // is; ADRP and branch immediates read as zero; other words are kept.
  Bytes a(0x3000, 0), b(0x3000, 0);
  WriteElfHeader(a, {{0, 0, 0x3000}}, kEmAarch64);
  WriteElfHeader(b, {{0, 0, 0x3000}}, kEmAarch64);
  for (Bytes* d : {&a, &b}) {
    StoreLe(&d->at(0x2000), 0xD10083FF, 4);  // f: sub sp, sp, #32
    StoreLe(&d->at(0x2004), 0xA9017BFD, 4);  //    stp x29, x30, [sp, #16]
    StoreLe(&d->at(0x2800), 0xD503201F, 4);  // g: nop
  }
  StoreLe(&a[0x1000], 0x94000000 | Bits(0x1000 / 4, 26), 4);  // bl f, from 0x1000
  StoreLe(&b[0x1100], 0x94000000 | Bits(0xF00 / 4, 26), 4);   // bl f, from 0x1100
  StoreLe(&b[0x1104], 0x94000000 | Bits(0x1700 / 4, 26), 4);  // bl g, from 0x1104
  StoreLe(&a[0x1008], 0x90000000 | 3 | Bits(1, 2) << 29, 4);  // adrp x3, +1 page
  auto na = NormalizeArm64Code(a, 0, a.size()), nb = NormalizeArm64Code(b, 0, b.size());
  auto word = [](const Bytes& d, std::size_t at) { return LoadLe(&d[at], 4); };
  EXPECT_EQ(word(na, 0x1000), word(nb, 0x1100));  // same callee, other distance
  EXPECT_NE(word(nb, 0x1100), word(nb, 0x1104));  // same distance class, other callee
  EXPECT_EQ(word(na, 0x1008), 0x90000003u);       // the page immediate reads as zero
  EXPECT_EQ(word(na, 0x2000), 0xD10083FFu);       // other instructions are kept
  EXPECT_EQ(word(na, 0x40), word(a, 0x40));       // as is the ELF header's
  // A copy of part of the file (the matcher's slices) is that part of the whole one's.
  auto part = NormalizeArm64Code(b, 0x1002, 0x2802);
  ASSERT_EQ(part.size(), 0x1800u);
  EXPECT_TRUE(std::equal(part.begin() + 2, part.end() - 2, nb.begin() + 0x1004));
  EXPECT_EQ(word(part, 0xFE), word(nb, 0x1100));  // the call, normalized in the copy too
  EXPECT_TRUE(std::equal(part.begin(), part.begin() + 2, b.begin() + 0x1002));  // straddling
}

}  // namespace
}  // namespace qp::delta
