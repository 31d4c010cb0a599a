#include "tuf/canonical_json.h"

#include <gtest/gtest.h>

namespace qp::tuf {
namespace {

std::string Canon(std::string_view text) {
  auto j = ParseJson(text);
  EXPECT_TRUE(j.ok()) << (j.ok() ? "" : j.error().ToString());
  if (!j.ok()) return "<parse error>";
  auto c = CanonicalJson(*j);
  EXPECT_TRUE(c.ok());
  return c.ok() ? *c : "<no canonical form>";
}

TEST(CanonicalJsonTest, SortsKeysAndDropsWhitespace) {
  EXPECT_EQ(Canon(R"( { "b" : 1 , "a" : [ true, false, null ], "c": {"y": -2, "x": 0} } )"),
            R"({"a":[true,false,null],"b":1,"c":{"x":0,"y":-2}})");
}

TEST(CanonicalJsonTest, EscapesOnlyQuoteAndBackslash) {
  // A served \n, \t, \u0001 and \u00e9 become raw bytes; " and \ stay escaped.
  EXPECT_EQ(Canon(R"({"k":"a\"b\\c\n\t\u0001\u00e9/"})"),
            std::string("{\"k\":\"a\\\"b\\\\c\n\t\x01\xc3\xa9/\"}"));
}

TEST(CanonicalJsonTest, OrdersNonAsciiKeysByCodePoint) {
  // U+00E9 (c3 a9) < U+4E2D (e4 b8 ad) < U+1F600 (f0 9f 98 80); "Z" < "a" by code point.
  EXPECT_EQ(Canon("{\"\xf0\x9f\x98\x80\":1,\"\xe4\xb8\xad\":2,\"\xc3\xa9\":3,\"a\":4,\"Z\":5}"),
            "{\"Z\":5,\"a\":4,\"\xc3\xa9\":3,\"\xe4\xb8\xad\":2,\"\xf0\x9f\x98\x80\":1}");
}

TEST(CanonicalJsonTest, WritesLargeIntegersInPlainDecimal) {
  EXPECT_EQ(Canon(R"({"n":18446744073709551615,"m":-9223372036854775808})"),
            R"({"m":-9223372036854775808,"n":18446744073709551615})");
}

TEST(CanonicalJsonTest, RejectsFloats) {
  auto j = ParseJson(R"({"x":1.5})");
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(CanonicalJson(*j).error().code(), ErrorCode::kInvalidArgument);
  auto e = ParseJson(R"({"x":1e3})");
  ASSERT_TRUE(e.ok());
  EXPECT_FALSE(CanonicalJson(*e).ok());
}

TEST(CanonicalJsonTest, RejectsDuplicateKeysDeepNestingAndBadUtf8) {
  EXPECT_EQ(ParseJson(R"({"a":1,"a":2})").error().code(), ErrorCode::kCorrupt);
  EXPECT_TRUE(ParseJson(R"({"a":{"a":1},"b":{"a":2}})").ok());
  std::string deep(100, '[');
  deep += std::string(100, ']');
  EXPECT_EQ(ParseJson(deep).error().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(ParseJson("\"\xff\"").error().code(), ErrorCode::kCorrupt);
  EXPECT_EQ(ParseJson("{\"a\":").error().code(), ErrorCode::kCorrupt);
}

TEST(CanonicalJsonTest, EnforcesTheSizeLimit) {
  JsonLimits limits;
  limits.max_bytes = 8;
  EXPECT_EQ(ParseJson("[1,2,3,4,5]", limits).error().code(), ErrorCode::kTooLarge);
}

TEST(CanonicalJsonTest, CanonicalFormIsAFixedPoint) {
  // (Raw control characters make the canonical form unparseable as strict JSON, so the
  // fixed point is checked on a document without them.)
  std::string once = Canon(R"({"z":{"b":[1,{"d":"\\\"","c":"é"}]},"a":""})");
  EXPECT_EQ(Canon(once), once);
}

}  // namespace
}  // namespace qp::tuf
