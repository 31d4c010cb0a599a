#include "delta/codec.h"

#include <gtest/gtest.h>

#include <random>

namespace qp::delta {
namespace {

std::vector<std::uint8_t> Sample(std::size_t n, int seed) {
  std::mt19937 rng(static_cast<unsigned>(seed));
  std::vector<std::uint8_t> v(n);
  for (std::size_t i = 0; i < n; ++i)
    v[i] = (rng() % 8 == 0) ? static_cast<std::uint8_t>(rng()) : 0;
  return v;
}

TEST(CodecTest, EveryCodecRoundTrips) {
  auto data = Sample(200000, 1);
  for (auto opts : {CompressOptions{true, false, 3, false}, CompressOptions{false, true, 3, false},
                    CompressOptions{false, false, 3, false}}) {
    EncodedStream s = CompressBest(data, opts);
    auto back = DecodeAll(s.codec, s.params, s.bytes, data.size(), "test");
    ASSERT_TRUE(back.ok()) << back.error().ToString();
    EXPECT_EQ(*back, data);
  }
}

// A large LZMA2 stream compressed in parts at once is still one stream that decodes whole,
// and costs next to nothing: each part is primed with the window before it.
TEST(CodecTest, Lzma2InPartsDecodesAsOneStream) {
  const auto once = Sample(300000, 7);  // twice over: later parts refer back to earlier ones
  std::vector<std::uint8_t> data = once;
  data.insert(data.end(), once.begin(), once.end());
  CompressOptions one{false, true, 6, false};
  CompressOptions parts = one;
  parts.threads = 3;
  parts.parallel_above = 64 << 10;
  EncodedStream whole = CompressBest(data, one), split = CompressBest(data, parts);
  ASSERT_EQ(split.codec, Codec::kLzma2);
  EXPECT_NE(split.bytes, whole.bytes);
  auto back = DecodeAll(split.codec, split.params, split.bytes, data.size(), "test");
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  EXPECT_EQ(*back, data);
  EXPECT_LT(split.bytes.size(), whole.bytes.size() * 101 / 100);
}

TEST(CodecTest, PicksTheSmallestAndFallsBackToRaw) {
  auto sparse = Sample(100000, 2);
  EncodedStream s = CompressBest(sparse, {});
  EXPECT_NE(s.codec, Codec::kRaw);
  EXPECT_LT(s.bytes.size(), sparse.size() / 2);
  std::vector<std::uint8_t> tiny = {42};
  EXPECT_EQ(CompressBest(tiny, {}).codec, Codec::kRaw);
  EXPECT_EQ(CompressBest({}, {}).bytes.size(), 0u);
}

TEST(CodecTest, TruncatedOrWrongLengthStreamsAreCorrupt) {
  auto data = Sample(50000, 3);
  for (bool zstd : {true, false}) {
    EncodedStream s = CompressBest(data, CompressOptions{zstd, !zstd, 3, false});
    auto cut = std::span(s.bytes).first(s.bytes.size() / 2);
    auto r = DecodeAll(s.codec, s.params, cut, data.size(), "difference");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), ErrorCode::kCorrupt);
    EXPECT_NE(r.error().message().find("difference stream"), std::string::npos);
    EXPECT_FALSE(DecodeAll(s.codec, s.params, s.bytes, data.size() + 1, "x").ok());
    EXPECT_FALSE(DecodeAll(s.codec, s.params, s.bytes, data.size() - 1, "x").ok());
    auto flipped = s.bytes;
    flipped[flipped.size() / 3] ^= 0x55;
    auto f = DecodeAll(s.codec, s.params, flipped, data.size(), "x");
    if (f.ok()) {
      EXPECT_NE(*f, data);  // LZMA2 has no checksum: corruption may decode to junk
    }
  }
}

TEST(CodecTest, RejectsUnknownCodecAndBadParameters) {
  std::vector<std::uint8_t> junk = {1, 2, 3};
  EXPECT_EQ(DecodeAll(static_cast<Codec>(9), {}, junk, 3, "x").error().code(),
            ErrorCode::kUnsupported);
  std::vector<std::uint8_t> huge_dict = {3, 30};
  EXPECT_EQ(DecodeAll(Codec::kLzma2, huge_dict, junk, 3, "x").error().code(), ErrorCode::kCorrupt);
}

}  // namespace
}  // namespace qp::delta
