#include "delta/file_delta.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "delta/x86_predictor.h"

namespace qp::delta {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes Random(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  Bytes v(n);
  for (auto& b : v) b = static_cast<std::uint8_t>(rng());
  return v;
}

FileDiffOptions FastOptions() {
  FileDiffOptions o;
  o.compress.zstd_level = 3;
  o.compress.lzma_extreme = false;
  return o;
}

void ExpectRoundTrip(const Bytes& old_data, const Bytes& new_data, std::size_t* patch_size = nullptr) {
  auto patch = DiffFile(old_data, new_data, FastOptions());
  ASSERT_TRUE(patch.ok()) << patch.error().ToString();
  auto rebuilt = ApplyFileDeltaToMemory(old_data, *patch);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.error().ToString();
  ASSERT_EQ(rebuilt->size(), new_data.size());
  EXPECT_TRUE(*rebuilt == new_data);
  if (patch_size) *patch_size = patch->size();
}

TEST(FileDeltaTest, EmptyFiles) {
  ExpectRoundTrip({}, {});
  ExpectRoundTrip({}, Random(1000, 1));
  ExpectRoundTrip(Random(1000, 2), {});
}

TEST(FileDeltaTest, IdenticalFilesGiveATinyPatch) {
  Bytes a = Random(300000, 3);
  std::size_t size = 0;
  ExpectRoundTrip(a, a, &size);
  EXPECT_LT(size, 100u);
}

TEST(FileDeltaTest, RandomDataUnrelated) { ExpectRoundTrip(Random(50000, 4), Random(60000, 5)); }

TEST(FileDeltaTest, AppendedShiftedAndInterleavedChanges) {
  Bytes base = Random(200000, 6);
  Bytes appended = base;
  Bytes tail = Random(5000, 7);
  appended.insert(appended.end(), tail.begin(), tail.end());
  std::size_t size = 0;
  ExpectRoundTrip(base, appended, &size);
  EXPECT_LT(size, 6000u);

  Bytes shifted = Random(777, 8);
  shifted.insert(shifted.end(), base.begin(), base.end());
  ExpectRoundTrip(base, shifted, &size);
  EXPECT_LT(size, 2000u);

  Bytes interleaved = base;
  std::mt19937 rng(9);
  for (int i = 0; i < 200; ++i) interleaved[rng() % interleaved.size()] ^= 0x5a;
  for (int i = 0; i < 20; ++i) {
    auto at = interleaved.begin() + static_cast<std::ptrdiff_t>(rng() % interleaved.size());
    interleaved.insert(at, 17, static_cast<std::uint8_t>(i));
  }
  ExpectRoundTrip(base, interleaved, &size);
  EXPECT_LT(size, 8000u);
}

TEST(FileDeltaTest, LargeInputUsesParallelSlices) {
  Bytes base = Random(9 << 20, 10);
  Bytes changed = base;
  for (std::size_t i = 0; i < changed.size(); i += 100000) changed[i] ^= 1;
  std::size_t size = 0;
  ExpectRoundTrip(base, changed, &size);
  EXPECT_LT(size, 20000u);
}

// A synthetic x86-64 "binary": calls whose targets move by a different amount than the
// callers. With prediction the differences vanish.
TEST(FileDeltaTest, X86PredictionRemovesMovedCallDisplacements) {
  Bytes old_data(400000, 0x90);
  const std::uint8_t elf[] = {0x7f, 'E', 'L', 'F', 2, 1, 1, 0};
  std::copy(std::begin(elf), std::end(elf), old_data.begin());
  old_data[18] = 62;  // e_machine = EM_X86_64
  old_data[19] = 0;
  std::mt19937 rng(11);
  for (std::size_t i = 64; i < 200000; i += 8 + rng() % 16) old_data[i] = static_cast<std::uint8_t>(rng());
  // Calls from the first half into the second half.
  std::vector<std::size_t> call_sites;
  for (std::size_t i = 1000; i < 190000; i += 997) {
    old_data[i] = 0xE8;
    std::int32_t target = static_cast<std::int32_t>(250000 + (i * 7) % 100000);
    std::int32_t disp = target - static_cast<std::int32_t>(i + 5);
    std::memcpy(&old_data[i + 1], &disp, 4);
    call_sites.push_back(i);
  }
  for (std::size_t i = 200000; i < old_data.size(); ++i) old_data[i] = static_cast<std::uint8_t>(rng());
  // New: 3000 bytes inserted at 220000 (inside the callee area); calls re-aimed.
  Bytes new_data(old_data.begin(), old_data.begin() + 220000);
  Bytes ins = Random(3000, 12);
  new_data.insert(new_data.end(), ins.begin(), ins.end());
  new_data.insert(new_data.end(), old_data.begin() + 220000, old_data.end());
  for (std::size_t i : call_sites) {
    std::int32_t disp;
    std::memcpy(&disp, &old_data[i + 1], 4);
    std::int64_t target = static_cast<std::int64_t>(i) + 5 + disp;
    if (target >= 220000) target += 3000;
    std::int32_t nd = static_cast<std::int32_t>(target - static_cast<std::int64_t>(i) - 5);
    std::memcpy(&new_data[i + 1], &nd, 4);
  }
  FileDiffOptions with = FastOptions(), without = FastOptions();
  without.executable_transform = false;
  auto p1 = DiffFile(old_data, new_data, with);
  auto p0 = DiffFile(old_data, new_data, without);
  ASSERT_TRUE(p1.ok() && p0.ok());
  EXPECT_EQ((*p1)[0], 1);  // transform in use
  auto rebuilt = ApplyFileDeltaToMemory(old_data, *p1);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.error().ToString();
  EXPECT_TRUE(*rebuilt == new_data);
  EXPECT_LT(p1->size(), p0->size());
}

TEST(FileDeltaTest, RejectsWrongSourceAndCorruptPayloads) {
  Bytes a = Random(100000, 13), b = a;
  b[500] ^= 1;
  b.insert(b.begin() + 1000, 50, 7);
  auto patch = DiffFile(a, b, FastOptions());
  ASSERT_TRUE(patch.ok());
  Bytes shorter(a.begin(), a.end() - 1);
  auto wrong = ApplyFileDeltaToMemory(shorter, *patch);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code(), ErrorCode::kVerificationFailed);
  for (std::size_t cut : {std::size_t{0}, std::size_t{1}, std::size_t{5}, patch->size() / 2,
                          patch->size() - 1}) {
    auto r = ApplyFileDeltaToMemory(a, std::span(*patch).first(cut));
    EXPECT_FALSE(r.ok()) << "cut at " << cut;
  }
  Bytes bad_transform = *patch;
  bad_transform[0] = 7;
  EXPECT_EQ(ApplyFileDeltaToMemory(a, bad_transform).error().code(), ErrorCode::kUnsupported);
}

}  // namespace
}  // namespace qp::delta
