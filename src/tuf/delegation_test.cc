// Target lookup through delegations: order, terminating roles, path patterns, hash
// prefixes, cycles, the cap on roles visited, a role reached through two delegators, and
// unusual role names.
#include "core/hash.h"
#include "tuf/updater.h"
#include "tuf/updater_test_util.h"

namespace qp::tuf {
namespace {

using ::testing::ElementsAre;

DelegatedRole Role(const std::string& name, std::vector<std::string> paths = {"*"},
                   bool terminating = false) {
  DelegatedRole r;
  r.name = name;
  r.paths = std::move(paths);
  r.terminating = terminating;
  return r;
}

class DelegationTest : public ClientTest {
 protected:
  // Looks `path` up with a fresh client; returns the role that listed it ("" if none) and
  // leaves the delegated metadata requests (after the top-level ones) in `visited`.
  Result<std::string> Lookup(const std::string& path) {
    Status refreshed = Refresh();
    if (!refreshed.ok()) return refreshed.error();
    repo_->metadata_requests.clear();
    updater_ = std::make_unique<Updater>(Config(), Env::Default(), repo_.get(), &clock_);
    auto info = updater_->GetTargetInfo(path);
    visited.clear();
    for (const auto& r : repo_->metadata_requests) {
      if (r.find("root") == std::string::npos && r != "timestamp.json" &&
          r.find("snapshot") == std::string::npos && r.find(".targets.json") == std::string::npos) {
        visited.push_back(r);
      }
    }
    if (!info.ok()) return info.error();
    return info->has_value() ? info->value().role : std::string();
  }
  void Publish() { ASSERT_TRUE(W().PublishAll().ok()); }

  std::vector<std::string> visited;
  std::unique_ptr<Updater> updater_;
};

TEST_F(DelegationTest, SearchesPreOrderDepthFirstInListedOrder) {
  repo_->Delegate("targets", Role("A"));
  repo_->Delegate("targets", Role("B"));
  repo_->Delegate("A", Role("C"));
  repo_->Delegate("A", Role("D"));
  Publish();
  auto role = Lookup("missing");
  ASSERT_TRUE(role.ok()) << role.error().ToString();
  EXPECT_EQ(*role, "");
  EXPECT_THAT(visited, ElementsAre("1.A.json", "1.C.json", "1.D.json", "1.B.json"));
}

TEST_F(DelegationTest, TerminatingRoleEndsTheSearchOutsideItsSubtree) {
  repo_->Delegate("targets", Role("A"));
  repo_->Delegate("targets", Role("B"));
  repo_->Delegate("A", Role("C", {"*"}, /*terminating=*/true));
  repo_->Delegate("C", Role("E"));
  repo_->Delegate("A", Role("D"));
  W().AddTarget("B", "file", Bytes("from B"));
  Publish();
  auto role = Lookup("file");
  ASSERT_TRUE(role.ok());
  EXPECT_EQ(*role, "");  // B would have it, but C is terminating
  EXPECT_THAT(visited, ElementsAre("1.A.json", "1.C.json", "1.E.json"));
}

TEST_F(DelegationTest, FollowsOnlyRolesWhosePatternsMatch) {
  repo_->Delegate("targets", Role("docs", {"*.md", "*.doc"}));
  repo_->Delegate("targets", Role("releases", {"releases/*/*"}));
  repo_->Delegate("releases", Role("x", {"releases/x/*"}));
  repo_->Delegate("releases", Role("y", {"releases/y/*.zip"}));
  W().AddTarget("docs", "README.md", Bytes("readme"));
  W().AddTarget("x", "releases/x/x_v1", Bytes("x1"));
  W().AddTarget("y", "releases/z/z_v1.zip", Bytes("not delegated to y"));
  Publish();
  auto role = Lookup("README.md");
  ASSERT_TRUE(role.ok());
  EXPECT_EQ(*role, "docs");
  EXPECT_THAT(visited, ElementsAre("1.docs.json"));
  role = Lookup("releases/x/x_v1");
  ASSERT_TRUE(role.ok());
  EXPECT_EQ(*role, "x");
  EXPECT_THAT(visited, ElementsAre("1.releases.json", "1.x.json"));
  // y lists it, but nobody delegates releases/z/* to y.
  role = Lookup("releases/z/z_v1.zip");
  ASSERT_TRUE(role.ok());
  EXPECT_EQ(*role, "");
  EXPECT_TRUE(visited.empty());  // releases is stored already; y is never asked for
}

TEST_F(DelegationTest, FollowsPathHashPrefixes) {
  std::string hash = HexEncode(Sha256Of(std::string_view("bin/tool")));
  DelegatedRole match;
  match.name = "bin-match";
  match.path_hash_prefixes = std::vector<std::string>{hash.substr(0, 2)};
  DelegatedRole other;
  other.name = "bin-other";
  other.path_hash_prefixes = std::vector<std::string>{hash[0] == 'f' ? "0" : "f"};
  repo_->Delegate("targets", other);
  repo_->Delegate("targets", match);
  W().AddTarget("bin-match", "bin/tool", Bytes("tool"));
  Publish();
  auto role = Lookup("bin/tool");
  ASSERT_TRUE(role.ok());
  EXPECT_EQ(*role, "bin-match");
  EXPECT_THAT(visited, ElementsAre("1.bin-match.json"));
}

TEST_F(DelegationTest, VisitsEachRoleOnceInACycle) {
  repo_->Delegate("targets", Role("A"));
  repo_->Delegate("targets", Role("B"));
  repo_->Delegate("B", Role("C"));
  repo_->Delegate("C", Role("D"));
  W().AddDelegation("D", Role("B"));
  W().AddDelegatedKey("D", "B", repo_->keys.begin()->second->Public());
  Publish();
  auto role = Lookup("missing");
  ASSERT_TRUE(role.ok());
  EXPECT_THAT(visited, ElementsAre("1.A.json", "1.B.json", "1.C.json", "1.D.json"));
}

TEST_F(DelegationTest, StopsAfterTheCapOnRolesVisited) {
  std::string parent = "targets";
  for (int i = 0; i < 40; ++i) {
    std::string name = "r" + std::to_string(i);
    repo_->Delegate(parent, Role(name));
    parent = name;
  }
  W().AddTarget(parent, "deep", Bytes("too deep"));
  Publish();
  auto role = Lookup("deep");
  ASSERT_TRUE(role.ok());
  EXPECT_EQ(*role, "");
  EXPECT_EQ(visited.size(), 31u);  // 32 roles including top-level targets
}

TEST_F(DelegationTest, RoleReachedThroughTwoDelegatorsIsVerifiedAgainstEach) {
  repo_->Delegate("targets", Role("A", {"a/*"}));
  repo_->Delegate("targets", Role("B", {"b/*"}));
  repo_->Delegate("A", Role("C", {"*/*"}));  // C is signed by the key A names
  // B also delegates to C, but names a key that has not signed C.
  W().AddDelegation("B", Role("C", {"*/*"}));
  auto stranger = crypto::SigningKey::Generate(crypto::Scheme::kEd25519);
  ASSERT_TRUE(stranger.ok());
  W().AddDelegatedKey("B", "C", stranger->Public());
  W().AddTarget("C", "a/x", Bytes("x"));
  W().AddTarget("C", "b/y", Bytes("y"));
  Publish();

  auto role = Lookup("a/x");
  ASSERT_TRUE(role.ok()) << role.error().ToString();
  EXPECT_EQ(*role, "C");
  // Same client, C now cached: through B it must not be trusted.
  auto via_b = updater_->GetTargetInfo("b/y");
  ASSERT_FALSE(via_b.ok());
  EXPECT_NE(via_b.error().message().find("C (delegated by B): 0 of 1"), std::string::npos);
  // A new client, with C stored on disk by the first one: the same.
  role = Lookup("b/y");
  ASSERT_FALSE(role.ok());
  // And through A it is still found.
  role = Lookup("a/x");
  ASSERT_TRUE(role.ok());
  EXPECT_EQ(*role, "C");
}

TEST_F(DelegationTest, EncodesUnusualRoleNamesInUrlsAndFileNames) {
  for (const std::string name : {"../evil", "a/b", "?#", "sp ace"}) {
    repo_->Delegate("targets", Role(name));
  }
  Publish();
  auto role = Lookup("missing");
  ASSERT_TRUE(role.ok()) << role.error().ToString();
  EXPECT_THAT(visited,
              ElementsAre("1...%2Fevil.json", "1.a%2Fb.json", "1.%3F%23.json", "1.sp%20ace.json"));
  EXPECT_TRUE(TestPathExists(dir_.Sub("..%2Fevil.json")));
  EXPECT_TRUE(TestPathExists(dir_.Sub("a%2Fb.json")));
  EXPECT_FALSE(TestPathExists(dir_.Sub("../evil.json")));
}

}  // namespace
}  // namespace qp::tuf
