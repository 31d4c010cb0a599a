#include "core/hash.h"

#include <gtest/gtest.h>

namespace qp {
namespace {

TEST(HashTest, Sha256KnownVectors) {
  EXPECT_EQ(HexEncode(Sha256Of(std::string_view(""))),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(HexEncode(Sha256Of(std::string_view("abc"))),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(HashTest, Sha512KnownVector) {
  std::string_view abc = "abc";
  auto d = Sha512Of(
      std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(abc.data()), abc.size()));
  EXPECT_EQ(HexEncode(d),
            "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
            "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f");
}

TEST(HashTest, StreamingEqualsOneShot) {
  std::string data(100000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 31 + 7);
  Sha256 h;
  for (size_t i = 0; i < data.size(); i += 777) h.Update(std::string_view(data).substr(i, 777));
  EXPECT_EQ(h.Finish(), Sha256Of(std::string_view(data)));

  Hasher h512(HashAlgorithm::kSha512);
  h512.Update(std::string_view(data).substr(0, 5));
  h512.Update(std::string_view(data).substr(5));
  auto full = Sha512Of(std::span<const std::uint8_t>(
      reinterpret_cast<const std::uint8_t*>(data.data()), data.size()));
  auto streamed = h512.Finish();
  EXPECT_TRUE(std::equal(full.begin(), full.end(), streamed.begin(), streamed.end()));
}

TEST(HashTest, HexRoundTripAndErrors) {
  std::vector<std::uint8_t> bytes = {0x00, 0x7f, 0x80, 0xff, 0x12};
  EXPECT_EQ(HexEncode(bytes), "007f80ff12");
  auto back = HexDecode("007F80ff12");
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, bytes);
  EXPECT_EQ(HexDecode("abc").error().code(), ErrorCode::kInvalidArgument);
  auto bad = HexDecode("0g");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find("offset 1"), std::string::npos);
  EXPECT_TRUE(HexDecode("")->empty());
}

TEST(HashTest, ConstantTimeEquals) {
  std::vector<std::uint8_t> a = {1, 2, 3}, b = {1, 2, 3}, c = {1, 2, 4}, d = {1, 2};
  EXPECT_TRUE(ConstantTimeEquals(a, b));
  EXPECT_FALSE(ConstantTimeEquals(a, c));
  EXPECT_FALSE(ConstantTimeEquals(a, d));
  EXPECT_TRUE(ConstantTimeEquals({}, {}));
}

}  // namespace
}  // namespace qp
