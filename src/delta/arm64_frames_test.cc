// Transform 4 on synthetic AArch64 code: stack-frame offsets that a compiler laid out anew,
// targets that lie in no block, and literals stored with absolute immediates.
#include <gtest/gtest.h>

#include "delta/byte_io.h"
#include "delta/file_delta.h"
#include "delta/file_delta_format.h"
#include "delta/predictor.h"
#include "delta/predictor_testing.h"

namespace qp::delta {
namespace {

using Bytes = std::vector<std::uint8_t>;

constexpr std::uint32_t kSp = 31, kFp = 29;

std::uint32_t StrX(std::uint32_t t, std::uint32_t n, std::uint32_t off) {  // STR Xt, [Xn, #off]
  return 0xF9000000 | (off / 8) << 10 | n << 5 | t;
}
std::uint32_t LdrX(std::uint32_t t, std::uint32_t n, std::uint32_t off) {
  return 0xF9400000 | (off / 8) << 10 | n << 5 | t;
}
std::uint32_t LdrW(std::uint32_t t, std::uint32_t n, std::uint32_t off) {
  return 0xB9400000 | (off / 4) << 10 | n << 5 | t;
}
std::uint32_t SturX(std::uint32_t t, std::uint32_t n, std::int32_t off) {  // STUR Xt, [Xn, #off]
  return 0xF8000000 | (static_cast<std::uint32_t>(off) & 0x1FF) << 12 | n << 5 | t;
}
std::uint32_t Pair(std::uint32_t op, std::uint32_t t, std::uint32_t t2, std::uint32_t n,
                   std::int32_t off) {  // STP / LDP / STP pre-index (op), 64-bit
  return op | (static_cast<std::uint32_t>(off / 8) & 0x7F) << 15 | t2 << 10 | n << 5 | t;
}
constexpr std::uint32_t kStp = 0xA9000000, kLdp = 0xA9400000, kStpPre = 0xA9800000;
std::uint32_t AddX(std::uint32_t d, std::uint32_t n, std::int32_t imm) {  // ADD/SUB Xd, Xn, #imm
  return (imm < 0 ? 0xD1000000 : 0x91000000) |
         static_cast<std::uint32_t>(imm < 0 ? -imm : imm) << 10 | n << 5 | d;
}

// Words `old_words` and `new_words` at 0x1000 of an AArch64 file (one segment, offset ==
// address, no section headers: every word is taken for code).
std::pair<Bytes, Bytes> Files(const std::vector<std::uint32_t>& old_words,
                              const std::vector<std::uint32_t>& new_words) {
  Bytes a(0x2000, 0), b(0x2000, 0);
  WriteElfHeader(a, {{0, 0, 0x2000}}, kEmAarch64);
  WriteElfHeader(b, {{0, 0, 0x2000}}, kEmAarch64);
  for (std::size_t i = 0; i < old_words.size(); ++i) StoreLe(&a[0x1000 + 4 * i], old_words[i], 4);
  for (std::size_t i = 0; i < new_words.size(); ++i) StoreLe(&b[0x1000 + 4 * i], new_words[i], 4);
  return {a, b};
}

TEST(Arm64FramesTest, OffsetsFollowAFrameLaidOutAnew) {
  // Two functions as GCC 12 laid their frames out before and after its fix for
  // CVE-2023-4039. The first addresses its frame from sp: the saved registers moved up by
  // the locals' 256 bytes, the locals down by the saved registers' 96. The second uses x29,
  // whose locals went below it (STR became STUR, ADD became SUB).
  const std::vector<std::uint32_t> old_words = {
      AddX(kSp, kSp, -368),               // prologue (unchanged)
      Pair(kStp, 19, 20, kSp, 16),        // saved: the first of its class, missed
      StrX(30, kSp, 96),                  // saved: +256 learned
      StrX(0, kSp, 168),                  // local: the first of its class, missed
      LdrW(0, kSp, 176),                  // local: -96 learned
      AddX(3, kSp, 232),                  // local
      LdrX(1, kSp, 168),                  // local, an offset seen before
      Pair(kLdp, 19, 20, kSp, 16),        // saved
      AddX(kSp, kSp, 368),                // the epilogue: the frame's size, missed
      Pair(kStpPre, kFp, 30, kSp, -144),  // prologue of the second (its size changed: missed)
      AddX(kFp, kSp, 0),                  // mov x29, sp
      StrX(2, kFp, 136),                  // local on x29: the first, missed
      StrX(3, kFp, 128),                  // -144 learned: STUR
      AddX(0, kFp, 96),                   // SUB
  };
  const std::vector<std::uint32_t> new_words = {
      AddX(kSp, kSp, -368), Pair(kStp, 19, 20, kSp, 272),
      StrX(30, kSp, 352),   StrX(0, kSp, 72),
      LdrW(0, kSp, 80),     AddX(3, kSp, 136),
      LdrX(1, kSp, 72),     Pair(kLdp, 19, 20, kSp, 272),
      AddX(kSp, kSp, 368),  Pair(kStpPre, kFp, 30, kSp, -96),
      AddX(kFp, kSp, 0),    SturX(2, kFp, -8),
      SturX(3, kFp, -16),   AddX(0, kFp, -48),
  };
  auto [old_data, new_data] = Files(old_words, new_words);
  const std::vector<Control> same = {Control{old_data.size(), 0, 0}};
  PredictionStats frames, plain;
  const std::size_t left =
      PredictedDifferences(Transform::kArm64Frames, old_data, new_data, same, &frames);
  const std::size_t before =
      PredictedDifferences(Transform::kArm64, old_data, new_data, same, &plain);
  const auto k = static_cast<std::size_t>(RefKind::kA64Frame);
  EXPECT_EQ(frames.miss[k], 5u);
  EXPECT_GE(frames.hit[k], 9u);
  EXPECT_EQ(plain.hit[k] + plain.miss[k], 0u);  // transform 3 does not look at frames
  EXPECT_LE(left, 5u * 4);
  EXPECT_GE(before, 10u);
  EXPECT_LT(left, before);
}

TEST(Arm64FramesTest, TargetsInNoBlockMoveWithTheBlockAfterThem) {
  // The old file's code at 0x1400-0x1900 was rewritten (0x80 bytes longer); a call into it
  // lands where the block after it says, a local branch keeps its distance.
  Bytes old_data(0x2000, 0);
  WriteElfHeader(old_data, {{0, 0, 0x2000}}, kEmAarch64);
  StoreLe(&old_data[0x1000], 0x94000000 | (0x800 / 4), 4);       // BL 0x1800
  StoreLe(&old_data[0x1004], 0xB4000000 | (0x80C / 4) << 5, 4);  // CBZ x0, 0x1810
  Bytes new_data(old_data.begin(), old_data.begin() + 0x1400);
  new_data.resize(0x1980, 0x11);
  new_data.insert(new_data.end(), old_data.begin() + 0x1900, old_data.end());
  StoreLe(&new_data[0x1000], 0x94000000 | (0x880 / 4), 4);       // BL 0x1880
  StoreLe(&new_data[0x1004], 0xB4000000 | (0x88C / 4) << 5, 4);  // CBZ x0, 0x1890
  const std::vector<Control> blocks = {Control{0x1400, 0x580, 0}, Control{0x700, 0, 0x1900}};
  PredictionStats four, three;
  PredictedDifferences(Transform::kArm64Frames, old_data, new_data, blocks, &four);
  PredictedDifferences(Transform::kArm64, old_data, new_data, blocks, &three);
  const auto call = static_cast<std::size_t>(RefKind::kA64Branch);
  const auto cond = static_cast<std::size_t>(RefKind::kA64CondBranch);
  EXPECT_EQ(four.hit[call], 1u);
  EXPECT_EQ(three.miss[call], 1u);
  EXPECT_EQ(four.miss[cond], 1u);
  EXPECT_EQ(three.miss[cond], 1u);
}

TEST(Arm64FramesTest, TheMatcherSeesLoadsAndStoresWithoutTheirFrameOffsets) {
  auto [a, b] =
      Files({StrX(0, kSp, 168), LdrW(0, kFp, 176), Pair(kStp, 19, 20, kSp, 16), LdrX(1, 2, 168)},
            {StrX(0, kSp, 72), SturX(0, kFp, -8), Pair(kStp, 19, 20, kSp, 272), LdrX(1, 2, 72)});
  auto na = NormalizeArm64Code(a, 0, a.size()), nb = NormalizeArm64Code(b, 0, b.size());
  auto word = [](const Bytes& d, std::size_t at) { return LoadLe(&d[at], 4); };
  EXPECT_EQ(word(na, 0x1000), word(nb, 0x1000));  // STR on sp: the offset is the predictor's
  EXPECT_NE(word(na, 0x1004), word(nb, 0x1004));  // a W load against an X store: not the same
  EXPECT_NE(word(na, 0x1008), word(nb, 0x1008));  // pairs keep their offsets
  EXPECT_EQ(word(na, 0x100C), word(a, 0x100C));   // as does any other base register
}

TEST(Arm64FramesTest, LiteralsHoldAbsoluteTargets) {
  Bytes file(0x3000, 0);
  WriteElfHeader(file, {{0, 0, 0x3000}}, kEmAarch64);
  MemoryFile f(file);
  auto layout = ElfLayout::Read(f, 0, /*code=*/true);
  ASSERT_TRUE(layout.ok());
  Bytes lit(0x2000, 0);                                      // literal bytes at new offset 0x1000
  StoreLe(&lit[0x000], 0x94000000 | (0x1000 / 4), 4);        // BL 0x2000, from 0x1000
  StoreLe(&lit[0x800], 0x94000000 | (0x800 / 4), 4);         // BL 0x2000, from 0x1800
  StoreLe(&lit[0x004], 0x90000000 | 3 | (4 >> 2) << 5, 4);   // ADRP x3, page 0x5000 (from 0x1004)
  StoreLe(&lit[0x1004], 0x90000000 | 3 | (3 & 3) << 29, 4);  // ADRP x3, page 0x5000 (from 0x2004)
  StoreLe(&lit[0x008], 0xD503201F, 4);                       // NOP
  Bytes stored = lit;
  Arm64Literals(*layout, 0x1000, stored, /*to_stored=*/true);
  EXPECT_EQ(LoadLe(&stored[0x000], 4), LoadLe(&stored[0x800], 4));   // one callee, one word
  EXPECT_EQ(LoadLe(&stored[0x004], 4), LoadLe(&stored[0x1004], 4));  // one page, one word
  EXPECT_EQ(LoadLe(&stored[0x008], 4), 0xD503201Fu);                 // others are kept
  Bytes back = stored;
  Arm64Literals(*layout, 0x1000, back, /*to_stored=*/false);
  EXPECT_EQ(back, lit);
  // Only whole words at multiples of 4: a piece from 0x1002 leaves the first call alone.
  Bytes piece(lit.begin() + 2, lit.end());
  Arm64Literals(*layout, 0x1002, piece, /*to_stored=*/true);
  EXPECT_TRUE(std::equal(piece.begin(), piece.begin() + 2, lit.begin() + 2));
  EXPECT_EQ(LoadLe(&piece[0x7FE], 4), LoadLe(&stored[0x800], 4));

  // The whole engine: literal calls of a patch are stored absolute, and come back.
  Bytes old_data = file, new_data = file;
  new_data.insert(new_data.begin() + 0x1000, lit.begin(), lit.end());
  FileDiffOptions options;
  options.compress.lzma_extreme = false;
  auto patch = DiffFile(old_data, new_data, options);
  ASSERT_TRUE(patch.ok());
  EXPECT_EQ((*patch)[0], kTransformArm64Frames);
  auto rebuilt = ApplyFileDeltaToMemory(old_data, *patch);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.error().ToString();
  EXPECT_TRUE(*rebuilt == new_data);
}

}  // namespace
}  // namespace qp::delta
