#include "agent/improvements.h"

#include <gtest/gtest.h>

namespace qp::agent {
namespace {

Improvement Imp(const std::string& label, const std::string& from, bool exploited = false,
                bool revoked = false) {
  Improvement i;
  i.id.component = "openssl";
  i.platform = "linux-x86_64";
  i.id.base = "3.0.17-1~deb12u2";
  i.id.label = label;
  i.from = from;
  i.exploited = exploited;
  i.revoked = revoked;
  i.result_digest = std::string(64, 'a');
  return i;
}

class DecideTest : public ::testing::Test {
 protected:
  DecisionInput Input(const std::string& current = "") {
    DecisionInput in;
    in.component = "openssl";
    in.platform = "linux-x86_64";
    in.base = "3.0.17-1~deb12u2";
    in.current_label = current;
    in.improvements = &imps;
    in.rollout = &rollout;
    in.install_id = "device-1";
    in.first_seen = &first_seen;
    in.now = now;
    return in;
  }
  std::vector<Improvement> imps;
  contract::Rollout rollout;
  std::map<std::string, WallTime> first_seen;
  WallTime now = std::chrono::system_clock::from_time_t(1800000000);
};

TEST_F(DecideTest, PicksTheNewestImprovementThatPatchesFromTheCurrentState) {
  imps = {Imp("a", "base"), Imp("b", "base"), Imp("b", "a")};
  rollout.improvements["openssl/3.0.17-1~deb12u2/b"] = {100, false, ""};
  Decision d = Decide(Input());
  ASSERT_EQ(d.kind, Decision::Kind::kInstall);
  EXPECT_EQ(d.improvement->id.label, "b");
  EXPECT_EQ(d.improvement->from, "base");
  d = Decide(Input("a"));
  ASSERT_EQ(d.kind, Decision::Kind::kInstall);
  EXPECT_EQ(d.improvement->from, "a");
  EXPECT_EQ(Decide(Input("b")).kind, Decision::Kind::kNothing);
}

TEST_F(DecideTest, IgnoresOtherBasesPlatformsAndComponents) {
  Improvement other_base = Imp("a", "base");
  other_base.id.base = "3.0.20-1~deb12u2";
  Improvement other_platform = Imp("a", "base");
  other_platform.platform = "linux-aarch64";
  imps = {other_base, other_platform};
  rollout.improvements["openssl/3.0.20-1~deb12u2/a"] = {100, false, ""};
  rollout.improvements["openssl/3.0.17-1~deb12u2/a"] = {100, false, ""};
  EXPECT_EQ(Decide(Input()).kind, Decision::Kind::kNothing);
}

TEST_F(DecideTest, RespectsRolloutPercentageAndHalt) {
  imps = {Imp("a", "base")};
  EXPECT_EQ(Decide(Input()).kind, Decision::Kind::kNothing);  // not in rollout.json: 0%
  rollout.improvements["openssl/3.0.17-1~deb12u2/a"] = {0, false, ""};
  EXPECT_EQ(Decide(Input()).kind, Decision::Kind::kNothing);
  rollout.improvements["openssl/3.0.17-1~deb12u2/a"] = {100, true, "too many failures"};
  Decision d = Decide(Input());
  EXPECT_EQ(d.kind, Decision::Kind::kHalted);
  EXPECT_EQ(d.reason, "rollout halted: too many failures");
  // About half of many devices are inside a 50% rollout, and a device's answer is stable.
  int inside = 0;
  for (int i = 0; i < 2000; ++i) {
    inside += contract::InRollout("device-" + std::to_string(i), "openssl/3.0.17-1~deb12u2/a", 50)
                  ? 1
                  : 0;
  }
  EXPECT_GT(inside, 900);
  EXPECT_LT(inside, 1100);
  EXPECT_EQ(contract::Cohort("x", "y"), contract::Cohort("x", "y"));
}

TEST_F(DecideTest, AHaltedOrNotYetOfferedNewerImprovementDoesNotHoldBackAnOlderOne) {
  imps = {Imp("a", "base"), Imp("b", "base")};
  rollout.improvements["openssl/3.0.17-1~deb12u2/a"] = {100, false, ""};
  rollout.improvements["openssl/3.0.17-1~deb12u2/b"] = {0, false, ""};
  Decision d = Decide(Input());
  ASSERT_EQ(d.kind, Decision::Kind::kInstall);
  EXPECT_EQ(d.improvement->id.label, "a");
  rollout.improvements["openssl/3.0.17-1~deb12u2/b"] = {100, true, "halted"};
  d = Decide(Input());
  ASSERT_EQ(d.kind, Decision::Kind::kInstall);
  EXPECT_EQ(d.improvement->id.label, "a");
  rollout.improvements["openssl/3.0.17-1~deb12u2/a"] = {100, true, "also halted"};
  EXPECT_EQ(Decide(Input()).kind, Decision::Kind::kHalted);
}

TEST_F(DecideTest, AutoInstallOffMakesItAvailableAndManualInstallsAnyway) {
  imps = {Imp("a", "base")};
  rollout.improvements["openssl/3.0.17-1~deb12u2/a"] = {100, false, ""};
  DecisionInput in = Input();
  in.auto_install = false;
  EXPECT_EQ(Decide(in).kind, Decision::Kind::kAvailable);
  in.manual = true;
  EXPECT_EQ(Decide(in).kind, Decision::Kind::kInstall);
}

TEST_F(DecideTest, DeferralHoldsOrdinaryFixesButNotExploitedOnes) {
  imps = {Imp("a", "base")};
  rollout.improvements["openssl/3.0.17-1~deb12u2/a"] = {100, false, ""};
  first_seen["openssl/3.0.17-1~deb12u2/a"] = now;
  DecisionInput in = Input();
  in.defer = std::chrono::hours(24);
  Decision d = Decide(in);
  EXPECT_EQ(d.kind, Decision::Kind::kDeferred);
  EXPECT_EQ(d.until, now + std::chrono::hours(24));
  in.now = now + std::chrono::hours(25);
  EXPECT_EQ(Decide(in).kind, Decision::Kind::kInstall);
  imps = {Imp("a", "base", /*exploited=*/true)};
  in.now = now;
  EXPECT_EQ(Decide(in).kind, Decision::Kind::kInstall);
}

TEST_F(DecideTest, RevokedInstalledImprovementIsRolledBack) {
  imps = {Imp("a", "base", false, /*revoked=*/true)};
  Decision d = Decide(Input("a"));
  EXPECT_EQ(d.kind, Decision::Kind::kRemoveRevoked);
  EXPECT_EQ(Decide(Input()).kind, Decision::Kind::kNothing);  // and never installed
}

TEST(ImprovementTest, ParsesCustomMetadataAndRollout) {
  tuf::TargetInfo t;
  t.path = "improvements/openssl/3.0.17-1~deb12u2/openssl-3.0.17-1~deb12u2-a.linux-x86_64.qpatch";
  t.file.custom = nlohmann::json::parse(R"({"quietpatch": {"component": "openssl",
      "platform": "linux-x86_64", "base": "3.0.17-1~deb12u2", "label": "a", "from": "base",
      "result_digest": ")" + std::string(64, 'f') +
                                        R"(", "cves": ["CVE-2025-9230"],
      "urgency": "critical", "exploited": true, "restart": ["nginx"], "revoked": false}})");
  auto imp = ParseImprovement(t);
  ASSERT_TRUE(imp.ok()) << imp.error().ToString();
  EXPECT_EQ(imp->Id(), "openssl/3.0.17-1~deb12u2/a");
  EXPECT_TRUE(imp->exploited);
  t.file.custom["quietpatch"]["label"] = "A!";
  EXPECT_FALSE(ParseImprovement(t).ok());

  std::string rollout = R"({"improvements": {"openssl/3.0.17-1~deb12u2/a": {"percent": 50,
      "halted": true, "reason": "auto-halt"}}})";
  auto r = contract::Rollout::Parse(std::span<const std::uint8_t>(
      reinterpret_cast<const std::uint8_t*>(rollout.data()), rollout.size()));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->improvements.at("openssl/3.0.17-1~deb12u2/a").percent, 50);
  EXPECT_TRUE(r->improvements.at("openssl/3.0.17-1~deb12u2/a").halted);
  EXPECT_TRUE(contract::LabelLess("z", "aa"));
}

}  // namespace
}  // namespace qp::agent
