// The contracts between parts: each one read back from what it writes, and each malformed
// input refused with a message that says what is wrong.
#include <gtest/gtest.h>

#include "contract/device_auth.h"
#include "contract/improvement_id.h"
#include "contract/improvement_target.h"
#include "contract/report_state.h"
#include "contract/rollout.h"
#include "contract/timestamp_peek.h"

namespace qp::contract {
namespace {

std::vector<std::uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

TEST(ImprovementIdTest, ParsesAndPrintsTheThreeParts) {
  auto id = ImprovementId::Parse("openssl/3.0.17-1~deb12u2/ab");
  ASSERT_TRUE(id.ok()) << id.error().ToString();
  EXPECT_EQ(id->component, "openssl");
  EXPECT_EQ(id->base, "3.0.17-1~deb12u2");
  EXPECT_EQ(id->label, "ab");
  EXPECT_EQ(id->ToString(), "openssl/3.0.17-1~deb12u2/ab");
  EXPECT_EQ(id->TargetDir(), "improvements/openssl/3.0.17-1~deb12u2/");
}

TEST(ImprovementIdTest, RefusesMissingPartsAndBadLabels) {
  for (const char* bad : {"", "openssl", "openssl/base", "/base/a", "openssl//a", "openssl/base/",
                          "openssl/base/A", "openssl/base/a1", "openssl/base/abcdefghijklm"}) {
    auto id = ImprovementId::Parse(bad);
    ASSERT_FALSE(id.ok()) << bad;
    EXPECT_EQ(id.error().code(), ErrorCode::kInvalidArgument) << bad;
  }
}

TEST(LabelTest, OrdersByLengthThenAlphabet) {
  EXPECT_TRUE(LabelLess("a", "b"));
  EXPECT_TRUE(LabelLess("z", "aa"));
  EXPECT_TRUE(LabelLess("az", "ba"));
  EXPECT_FALSE(LabelLess("aa", "z"));
  EXPECT_FALSE(LabelLess("a", "a"));
}

TEST(LabelTest, NextLabelCountsInLetters) {
  EXPECT_EQ(NextLabel({}), "a");
  EXPECT_EQ(NextLabel({"a"}), "b");
  EXPECT_EQ(NextLabel({"b", "a"}), "c");
  EXPECT_EQ(NextLabel({"z"}), "aa");
  EXPECT_EQ(NextLabel({"az", "b"}), "ba");
  EXPECT_EQ(NextLabel({"zz"}), "aaa");
  EXPECT_EQ(NextLabel({"BAD", "", "c"}), "d");
}

ImprovementTarget SampleTarget() {
  ImprovementTarget t;
  t.id = {"openssl", "3.0.17-1~deb12u2", "b"};
  t.platform = "linux-x86_64";
  t.from = "a";
  t.source_digest = std::string(64, '1');
  t.result_digest = std::string(64, 'f');
  t.cves = {"CVE-2025-9230"};
  t.urgency = "critical";
  t.exploited = true;
  t.restart = {"nginx"};
  t.published = 1764500000;
  return t;
}

TEST(ImprovementTargetTest, ReadsBackWhatItWrites) {
  ImprovementTarget t = SampleTarget();
  auto back = ImprovementTarget::FromCustom(t.ToCustom(), "improvements/x");
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  EXPECT_EQ(back->id, t.id);
  EXPECT_EQ(back->platform, t.platform);
  EXPECT_EQ(back->from, "a");
  EXPECT_EQ(back->source_digest, t.source_digest);
  EXPECT_EQ(back->result_digest, t.result_digest);
  EXPECT_EQ(back->cves, t.cves);
  EXPECT_EQ(back->urgency, "critical");
  EXPECT_TRUE(back->exploited);
  EXPECT_EQ(back->restart, t.restart);
  EXPECT_EQ(back->published, t.published);
  EXPECT_FALSE(back->revoked);
}

TEST(ImprovementTargetTest, RefusesWhatADeviceCannotActOnAndSaysWhere) {
  struct Case {
    const char* field;
    nlohmann::json value;
  };
  for (const Case& c :
       {Case{"label", "B"}, Case{"label", 7}, Case{"from", "1"}, Case{"result_digest", "abc"},
        Case{"source_digest", std::string(64, 'G')}, Case{"urgency", "whenever"},
        Case{"exploited", "yes"}, Case{"component", ""}}) {
    nlohmann::json custom = SampleTarget().ToCustom();
    custom["quietpatch"][c.field] = c.value;
    auto t = ImprovementTarget::FromCustom(custom, "improvements/openssl/x");
    ASSERT_FALSE(t.ok()) << c.field;
    EXPECT_EQ(t.error().code(), ErrorCode::kCorrupt);
    EXPECT_NE(t.error().ToString().find("improvements/openssl/x"), std::string::npos);
  }
  EXPECT_FALSE(ImprovementTarget::FromCustom(nlohmann::json::object(), "t").ok());
  EXPECT_FALSE(ImprovementTarget::FromCustom(nlohmann::json{{"quietpatch", 1}}, "t").ok());
}

TEST(RolloutTest, ReadsBackWhatItWritesAndClampsPercent) {
  Rollout r;
  r.improvements["openssl/base/a"] = {50, false, ""};
  r.improvements["openssl/base/b"] = {100, true, "auto-halt: 3 of 20"};
  auto back = Rollout::Parse(Bytes(r.Serialize()));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->improvements, r.improvements);
  ASSERT_NE(back->Find("openssl/base/b"), nullptr);
  EXPECT_EQ(back->Find("openssl/base/c"), nullptr);

  auto clamped = Rollout::Parse(Bytes(R"({"improvements": {"x/y/a": {"percent": 400},
                                                            "x/y/b": {"percent": -3}}})"));
  ASSERT_TRUE(clamped.ok());
  EXPECT_EQ(clamped->improvements.at("x/y/a").percent, 100);
  EXPECT_EQ(clamped->improvements.at("x/y/b").percent, 0);
}

TEST(RolloutTest, RefusesOtherShapes) {
  for (const char* bad :
       {"", "[]", "{}", R"({"improvements": []})", R"({"improvements": {"x/y/a": 5}})"}) {
    auto r = Rollout::Parse(Bytes(bad));
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kCorrupt);
  }
}

TEST(RolloutTest, CohortIsStableAndSpreadsDevices) {
  EXPECT_EQ(Cohort("device-1", "openssl/base/a"), Cohort("device-1", "openssl/base/a"));
  int in = 0;
  for (int i = 0; i < 1000; ++i) in += InRollout("device-" + std::to_string(i), "x/y/a", 25);
  EXPECT_GT(in, 180);
  EXPECT_LT(in, 320);
  EXPECT_FALSE(InRollout("device-1", "x/y/a", 0));
  EXPECT_TRUE(InRollout("device-1", "x/y/a", 100));
}

TEST(ReportStateTest, EveryStateHasOneWireName) {
  for (ReportState s : kAllReportStates) {
    auto back = ParseReportState(ReportStateName(s));
    ASSERT_TRUE(back.has_value()) << ReportStateName(s);
    EXPECT_EQ(*back, s);
  }
  EXPECT_EQ(ReportStateName(ReportState::kRolledBack), "rolled_back");
  EXPECT_FALSE(ParseReportState("Protected").has_value());
  EXPECT_FALSE(ParseReportState("").has_value());
  EXPECT_TRUE(IsFailureState(ReportState::kFailed));
  EXPECT_TRUE(IsFailureState(ReportState::kRolledBack));
  EXPECT_FALSE(IsFailureState(ReportState::kInstalled));
}

TEST(TimestampPeekTest, ReadsVersionAndExpiryWithoutTrustingThem) {
  auto p = PeekTimestamp(
      Bytes(R"({"signed": {"_type": "timestamp", "version": 42, "expires": "2030-01-01T00:00:00Z"},
               "signatures": []})"));
  ASSERT_TRUE(p.ok()) << p.error().ToString();
  EXPECT_EQ(p->version, 42u);
  EXPECT_GT(p->expires, WallTime());
  for (const char* bad :
       {"", "{}", R"({"signed": 1})",
        R"({"signed": {"version": -1, "expires": "2030-01-01T00:00:00Z"}})",
        R"({"signed": {"version": 1}})", R"({"signed": {"version": 1, "expires": "soon"}})"}) {
    EXPECT_FALSE(PeekTimestamp(Bytes(bad)).ok()) << bad;
  }
  EXPECT_EQ(PeekTimestamp(std::vector<std::uint8_t>(kMaxTimestampBytes + 1, ' ')).error().code(),
            ErrorCode::kTooLarge);
}

TEST(DeviceAuthTest, ASignedRequestVerifiesOnlyAsSignedWithinTheWindow) {
  auto key = crypto::SigningKey::Generate(crypto::Scheme::kEd25519);
  ASSERT_TRUE(key.ok());
  auto id = DeviceIdOf(key->Public());
  ASSERT_TRUE(id.ok());
  EXPECT_TRUE(IsDeviceId(*id));
  auto verifying = crypto::VerifyingKey::Parse(key->Public());
  ASSERT_TRUE(verifying.ok());
  WallTime now = std::chrono::system_clock::from_time_t(1800000000);
  auto nonce = NewNonce();
  ASSERT_TRUE(nonce.ok());
  auto sig = SignDeviceRequest(*key, *id, "POST", "/v1/reports", "{\"a\":1}", now, *nonce);
  ASSERT_TRUE(sig.ok());
  const auto& v = **verifying;
  EXPECT_TRUE(VerifyDeviceRequest(v, *sig, "POST", "/v1/reports", "{\"a\":1}", now).ok());
  EXPECT_TRUE(
      VerifyDeviceRequest(v, *sig, "POST", "/v1/reports", "{\"a\":1}", now + kMaxClockSkew).ok());
  // Any change to what was signed, or a time outside the window, is refused.
  auto refused = [&](const DeviceSignature& s, std::string_view method, std::string_view target,
                     std::string_view body, WallTime at) {
    Status st = VerifyDeviceRequest(v, s, method, target, body, at);
    return !st.ok();
  };
  EXPECT_TRUE(refused(*sig, "POST", "/v1/reports", "{\"a\":2}", now));
  EXPECT_TRUE(refused(*sig, "POST", "/v1/enroll", "{\"a\":1}", now));
  EXPECT_TRUE(refused(*sig, "GET", "/v1/reports", "{\"a\":1}", now));
  EXPECT_TRUE(refused(*sig, "POST", "/v1/reports", "{\"a\":1}",
                      now + kMaxClockSkew + std::chrono::seconds(1)));
  EXPECT_TRUE(refused(*sig, "POST", "/v1/reports", "{\"a\":1}",
                      now - kMaxClockSkew - std::chrono::seconds(1)));
  DeviceSignature other = *sig;
  other.nonce = std::string(32, 'a');
  EXPECT_TRUE(refused(other, "POST", "/v1/reports", "{\"a\":1}", now));
  other = *sig;
  other.time = "+1800000000";
  EXPECT_TRUE(refused(other, "POST", "/v1/reports", "{\"a\":1}", now));
  other = *sig;
  other.signature = "zz";
  EXPECT_TRUE(refused(other, "POST", "/v1/reports", "{\"a\":1}", now));
  // Another device's key does not verify it.
  auto stranger = crypto::SigningKey::Generate(crypto::Scheme::kEd25519);
  auto stranger_v = crypto::VerifyingKey::Parse(stranger->Public());
  EXPECT_FALSE(
      VerifyDeviceRequest(**stranger_v, *sig, "POST", "/v1/reports", "{\"a\":1}", now).ok());
  // Install ids come from ed25519 keys only.
  auto ecdsa = crypto::SigningKey::Generate(crypto::Scheme::kEcdsaP256);
  EXPECT_FALSE(DeviceIdOf(ecdsa->Public()).ok());
}

}  // namespace
}  // namespace qp::contract
