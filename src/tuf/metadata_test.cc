#include "tuf/metadata.h"

#include <gtest/gtest.h>

#include "core/hash.h"
#include "tuf/repository.h"

namespace qp::tuf {
namespace {

std::vector<std::uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

const std::string kTimestamp = R"({
  "signatures": [],
  "signed": {"_type": "timestamp", "spec_version": "1.0.31", "version": 3,
             "expires": "2030-01-01T00:00:00Z", "x-vendor": {"n": 1},
             "meta": {"snapshot.json": {"version": 7, "length": 12}}}
})";

TEST(MetadataTest, ParsesTimestampAndKeepsUnknownFields) {
  auto md = ParseTimestamp(Bytes(kTimestamp));
  ASSERT_TRUE(md.ok()) << md.error().ToString();
  EXPECT_EQ(md->signed_part.version, 3u);
  EXPECT_EQ(md->signed_part.snapshot_meta.version, 7u);
  EXPECT_EQ(*md->signed_part.snapshot_meta.length, 12u);
  EXPECT_EQ(md->signed_part.unknown["x-vendor"]["n"], 1);
  // The signed message includes the unknown field.
  EXPECT_NE(md->canonical_signed.find("\"x-vendor\":{\"n\":1}"), std::string::npos);
  EXPECT_EQ(FormatExpiry(md->signed_part.expires), "2030-01-01T00:00:00Z");
}

TEST(MetadataTest, RejectsWrongTypeAndBadFields) {
  std::string wrong_type = kTimestamp;
  wrong_type.replace(wrong_type.find("\"timestamp\""), 11, "\"snapshot\"");
  auto md = ParseTimestamp(Bytes(wrong_type));
  ASSERT_FALSE(md.ok());
  EXPECT_NE(md.error().message().find("_type"), std::string::npos);

  std::string bad_expiry = kTimestamp;
  bad_expiry.replace(bad_expiry.find("2030-01-01T00:00:00Z"), 20, "2030-01-01 00:00:00");
  EXPECT_FALSE(ParseTimestamp(Bytes(bad_expiry)).ok());

  std::string spec2 = kTimestamp;
  spec2.replace(spec2.find("1.0.31"), 6, "2.0.0");
  EXPECT_EQ(ParseTimestamp(Bytes(spec2)).error().code(), ErrorCode::kUnsupported);

  std::string negative = kTimestamp;
  negative.replace(negative.find("\"version\": 3"), 12, "\"version\": -3");
  EXPECT_FALSE(ParseTimestamp(Bytes(negative)).ok());

  std::string with_float = kTimestamp;
  with_float.replace(with_float.find("\"n\": 1"), 6, "\"n\": 1.5");
  EXPECT_FALSE(ParseTimestamp(Bytes(with_float)).ok());
}

TEST(MetadataTest, FarFutureAndFarPastExpiriesDoNotOverflow) {
  auto far = ParseExpiry("9999-12-31T23:59:59Z");
  ASSERT_TRUE(far.ok());
  EXPECT_GT(*far, std::chrono::system_clock::from_time_t(4000000000));
  auto past = ParseExpiry("0001-01-01T00:00:00Z");
  ASSERT_TRUE(past.ok());
  EXPECT_LT(*past, std::chrono::system_clock::from_time_t(0));
}

TEST(MetadataTest, RejectsRepeatedSignatureKeyIds) {
  std::string twice = kTimestamp;
  twice.replace(twice.find("[]"), 2,
                R"([{"keyid": "ab", "sig": "00"}, {"keyid": "ab", "sig": "01"}])");
  auto md = ParseTimestamp(Bytes(twice));
  ASSERT_FALSE(md.ok());
  EXPECT_NE(md.error().message().find("more than one signature"), std::string::npos);
}

TEST(MetadataTest, MatchesPathPatternsPerSegment) {
  EXPECT_TRUE(MatchTargetPattern("*", "file.txt"));
  EXPECT_FALSE(MatchTargetPattern("*", "dir/file.txt"));
  EXPECT_TRUE(MatchTargetPattern("dir/*", "dir/file.txt"));
  EXPECT_FALSE(MatchTargetPattern("dir/*", "dir/sub/file.txt"));
  EXPECT_TRUE(MatchTargetPattern("releases/*/*.zip", "releases/y/y_v1.zip"));
  EXPECT_FALSE(MatchTargetPattern("releases/*/*.zip", "releases/y/y_v1.tar"));
  EXPECT_FALSE(MatchTargetPattern("*.TXT", "a.txt"));  // case-sensitive
  EXPECT_TRUE(MatchTargetPattern("file-?.txt", "file-1.txt"));
  EXPECT_FALSE(MatchTargetPattern("a/*", "a"));
}

TEST(MetadataTest, MatchesPathHashPrefixes) {
  DelegatedRole role;
  role.name = "bins";
  // sha256("file.txt") starts with "43d2"? Compute rather than assume.
  std::string hash = HexEncode(Sha256Of(std::string_view("file.txt")));
  role.path_hash_prefixes = std::vector<std::string>{hash.substr(0, 2)};
  EXPECT_TRUE(role.IsDelegatedPath("file.txt"));
  role.path_hash_prefixes = std::vector<std::string>{hash[0] == '0' ? "1" : "0"};
  EXPECT_FALSE(role.IsDelegatedPath("file.txt"));
}

TEST(MetadataTest, KeyIdIsSha256OfCanonicalKeyObject) {
  crypto::PublicKeyDescription d{"ed25519", "ed25519", std::string(64, 'a')};
  Key key = Key::FromDescription(d);
  std::string canonical = R"({"keytype":"ed25519","keyval":{"public":")" + std::string(64, 'a') +
                          R"("},"scheme":"ed25519"})";
  EXPECT_EQ(key.KeyId(), HexEncode(Sha256Of(std::string_view(canonical))));
}

TEST(MetadataTest, WrittenMetadataParsesBack) {
  RepositoryWriter writer(std::chrono::system_clock::from_time_t(1700000000));
  DelegatedRole role;
  role.name = "improvements";
  role.paths = std::vector<std::string>{"improvements/*"};
  writer.AddDelegation("targets", role);
  auto bytes = writer.Sign("targets");
  ASSERT_TRUE(bytes.ok());
  auto md = ParseTargets(*bytes);
  ASSERT_TRUE(md.ok()) << md.error().ToString();
  ASSERT_TRUE(md->signed_part.delegations.has_value());
  EXPECT_EQ(md->signed_part.delegations->roles[0].name, "improvements");
  auto root = writer.Sign("root");
  ASSERT_TRUE(root.ok());
  EXPECT_TRUE(ParseRoot(*root).ok());
}

// One key written several ways (hex case, keytype alias, PEM with or without its final
// newline) is one key: its signatures under each spelling count once toward a threshold.
TEST(MetadataTest, AKeyCountsOnceHoweverItIsSpelled) {
  const std::string message = "signed part";
  std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(message.data()),
                                      message.size());
  auto check = [&](const crypto::SigningKey& signer,
                   const std::vector<crypto::PublicKeyDescription>& spellings) {
    std::map<std::string, Key> keys;
    std::vector<std::string> ids;
    std::vector<Signature> sigs;
    auto sig = signer.Sign(bytes);
    ASSERT_TRUE(sig.ok());
    for (const auto& d : spellings) {
      Key k = Key::FromDescription(d);
      ASSERT_NE(k.verifier, nullptr) << d.public_value;
      ids.push_back(k.KeyId());
      sigs.push_back(Signature{k.KeyId(), HexEncode(*sig)});
      keys[k.KeyId()] = k;
    }
    ASSERT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), spellings.size())
        << "each spelling has its own key id";
    EXPECT_TRUE(VerifyThreshold("root", message, sigs, keys, ids, 1).ok());
    Status two = VerifyThreshold("root", message, sigs, keys, ids, 2);
    ASSERT_FALSE(two.ok()) << "one key counted twice";
    EXPECT_NE(two.error().message().find("1 of 2"), std::string::npos) << two.error().ToString();
  };
  auto ed = crypto::SigningKey::Generate(crypto::Scheme::kEd25519).value();
  crypto::PublicKeyDescription lower = ed.Public(), upper = ed.Public();
  for (auto& c : upper.public_value) c = static_cast<char>(std::toupper(c));
  check(ed, {lower, upper});
  auto ec = crypto::SigningKey::Generate(crypto::Scheme::kEcdsaP256).value();
  crypto::PublicKeyDescription ecdsa = ec.Public(), alias = ec.Public(), trimmed = ec.Public();
  ecdsa.keytype = "ecdsa";
  alias.keytype = "ecdsa-sha2-nistp256";
  while (!trimmed.public_value.empty() && trimmed.public_value.back() == '\n') {
    trimmed.public_value.pop_back();
  }
  check(ec, {ecdsa, alias, trimmed});
}

}  // namespace
}  // namespace qp::tuf
