#include "crypto/keys.h"

#include <gtest/gtest.h>

#include "core/hash.h"
#include "core/test_dir.h"
#include "crypto/key_file.h"

namespace qp::crypto {
namespace {

std::vector<std::uint8_t> Bytes(std::string_view s) { return {s.begin(), s.end()}; }

TEST(VerifyingKeyTest, AcceptsRfc8032Ed25519TestVector) {
  // RFC 8032 section 7.1, TEST 1 (empty message).
  PublicKeyDescription pub{"ed25519", "ed25519",
                           "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"};
  auto key = VerifyingKey::Parse(pub);
  ASSERT_TRUE(key.ok()) << key.error().ToString();
  auto sig = HexDecode(
      "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9"
      "b46bd25bf5f0595bbe24655141438e7a100b");
  ASSERT_TRUE(sig.ok());
  EXPECT_TRUE((*key)->Verify({}, *sig).ok());
  std::vector<std::uint8_t> one = {0};
  EXPECT_EQ((*key)->Verify(one, *sig).error().code(), ErrorCode::kVerificationFailed);
}

class SchemeTest : public ::testing::TestWithParam<Scheme> {};

TEST_P(SchemeTest, SignsAndVerifiesAndRejectsTampering) {
  auto key = SigningKey::Generate(GetParam());
  ASSERT_TRUE(key.ok());
  PublicKeyDescription pub = key->Public();
  EXPECT_EQ(pub.scheme, SchemeName(GetParam()));
  auto verifier = VerifyingKey::Parse(pub);
  ASSERT_TRUE(verifier.ok()) << verifier.error().ToString();

  auto msg = Bytes("{\"_type\":\"timestamp\"}");
  auto sig = key->Sign(msg);
  ASSERT_TRUE(sig.ok());
  EXPECT_TRUE((*verifier)->Verify(msg, *sig).ok());

  auto other_msg = Bytes("{\"_type\":\"timestamq\"}");
  EXPECT_FALSE((*verifier)->Verify(other_msg, *sig).ok());
  auto bad_sig = *sig;
  bad_sig[bad_sig.size() / 2] ^= 1;
  EXPECT_FALSE((*verifier)->Verify(msg, bad_sig).ok());
  EXPECT_FALSE((*verifier)->Verify(msg, {}).ok());

  auto other = SigningKey::Generate(GetParam());
  ASSERT_TRUE(other.ok());
  auto other_verifier = VerifyingKey::Parse(other->Public());
  ASSERT_TRUE(other_verifier.ok());
  EXPECT_FALSE((*other_verifier)->Verify(msg, *sig).ok());
}

TEST_P(SchemeTest, PemRoundTripKeepsTheKey) {
  auto key = SigningKey::Generate(GetParam());
  ASSERT_TRUE(key.ok());
  auto again = SigningKey::FromPem(key->ToPem());
  ASSERT_TRUE(again.ok()) << again.error().ToString();
  EXPECT_EQ(again->scheme(), GetParam());
  EXPECT_EQ(again->Public().public_value, key->Public().public_value);
}

INSTANTIATE_TEST_SUITE_P(AllSchemes, SchemeTest,
                         ::testing::Values(Scheme::kEd25519, Scheme::kEcdsaP256, Scheme::kRsaPss));

TEST(VerifyingKeyTest, RejectsUnknownSchemesAndMismatchedKeys) {
  EXPECT_EQ(VerifyingKey::Parse({"ed25519", "ed448", std::string(64, 'a')}).error().code(),
            ErrorCode::kUnsupported);
  EXPECT_EQ(VerifyingKey::Parse({"ed25519", "ed25519", "abc"}).error().code(), ErrorCode::kCorrupt);
  auto ec = SigningKey::Generate(Scheme::kEcdsaP256);
  ASSERT_TRUE(ec.ok());
  // An EC PEM presented as an RSA key.
  EXPECT_EQ(
      VerifyingKey::Parse({"rsa", "rsassa-pss-sha256", ec->Public().public_value}).error().code(),
      ErrorCode::kCorrupt);
  EXPECT_EQ(VerifyingKey::Parse({"ecdsa", "ecdsa-sha2-nistp256", "not a pem"}).error().code(),
            ErrorCode::kCorrupt);
  // The legacy keytype spelling is accepted.
  EXPECT_TRUE(
      VerifyingKey::Parse({"ecdsa-sha2-nistp256", "ecdsa-sha2-nistp256", ec->Public().public_value})
          .ok());
}

TEST(KeyFileTest, WritesMode0600AndNeverOverwrites) {
  TestDir dir;
  Env* env = Env::Default();
  auto key = SigningKey::Generate(Scheme::kEd25519);
  ASSERT_TRUE(key.ok());
  std::string path = dir.path() + "/root.key";
  ASSERT_TRUE(WriteKeyFile(env, path, *key).ok());
  auto info = env->Stat(path);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->mode, 0600u);
  EXPECT_EQ(WriteKeyFile(env, path, *key).error().code(), ErrorCode::kAlreadyExists);
  auto read = ReadKeyFile(env, path);
  ASSERT_TRUE(read.ok()) << read.error().ToString();
  EXPECT_EQ(read->Public().public_value, key->Public().public_value);
}

TEST(KeyFileTest, RefusesAKeyFileOthersCanRead) {
  TestDir dir;
  Env* env = Env::Default();
  auto key = SigningKey::Generate(Scheme::kEd25519);
  ASSERT_TRUE(key.ok());
  std::string path = dir.path() + "/targets.key";
  ASSERT_TRUE(WriteKeyFile(env, path, *key).ok());
  ASSERT_TRUE(env->Chmod(path, 0644).ok());
  auto read = ReadKeyFile(env, path);
  ASSERT_FALSE(read.ok());
  EXPECT_NE(read.error().message().find("0644"), std::string::npos);
}

}  // namespace
}  // namespace qp::crypto
