// The publisher end to end on real Debian trees: build and publish (a) and a cumulative
// (b), check every path a device can take, then rollout, halt, revoke, key rotation with a
// threshold change and expiry refresh, each read back through the project's TUF client.
#include "publish/publisher.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <map>

#include "core/hash.h"
#include "core/test_data.h"
#include "core/test_dir.h"
#include "delta/tree_manifest.h"
#include "delta/tree_patch.h"
#include "tuf/bundle.h"

namespace qp::publish {
namespace {

using Json = nlohmann::json;
const std::string kBase = "3.0.17-1~deb12u2";

// A valid improvement id (the test's own literal).
contract::ImprovementId Id(const std::string& id) {
  return contract::ImprovementId::Parse(id).value();
}

std::string Digest(const std::string& tree) {
  auto m = delta::ScanTree(Env::Default(), tree);
  return m.ok() ? HexEncode(delta::ManifestDigest(*m)) : "";
}

class PublisherTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TestDir();
    for (const char* v : {"17", "20", "22"}) {
      std::string tree = UnpackTestDeb(*dir_, std::string("libssl3_3.0.") + v + "-1~deb12u2_amd64");
      ASSERT_EQ(std::rename(tree.c_str(), dir_->Sub(std::string("t") + v).c_str()), 0);
    }
    // Built once for the suite: (a) = 3.0.20's files, (b) = 3.0.22's, from base and from (a).
    RepoPaths none{"", ""};
    BuildSpec a = Spec("a", "t20", dir_->Sub("imp-a"));
    ASSERT_TRUE(BuildImprovement(Env::Default(), none, a).ok());
    BuildSpec b = Spec("b", "t22", dir_->Sub("imp-b"));
    b.earlier = {{"a", dir_->Sub("t20")}};
    ASSERT_TRUE(BuildImprovement(Env::Default(), none, b).ok());
  }
  static void TearDownTestSuite() { delete dir_; }

  static BuildSpec Spec(const std::string& label, const std::string& tree, const std::string& out) {
    BuildSpec s;
    s.component = "openssl";
    s.platform = "linux-x86_64";
    s.base = kBase;
    s.label = label;
    s.base_tree = dir_->Sub("t17");
    s.new_tree = dir_->Sub(tree);
    s.cves = {"CVE-2025-9230"};
    s.urgency = "critical";
    s.exploited = label == "a";
    s.out_dir = out;
    return s;
  }

  void SetUp() override {
    paths_ = {work_.Sub("repo"), work_.Sub("keys")};
    ASSERT_TRUE(InitRepository(Env::Default(), Clock::Real(), paths_, InitOptions{}).ok());
  }

  // A fresh device's view: what the TUF client lists and the rollout it reads.
  struct DeviceView {
    std::vector<tuf::TargetInfo> improvements;
    Json rollout;
    std::uint64_t root_version = 0;
  };
  Result<DeviceView> ReadAsDevice(Clock* clock = Clock::Real()) {
    TestDir md;
    WriteTestFile(md.Sub("root.json"), ReadTestFile(paths_.repo_dir + "/metadata/1.root.json"));
    online::RepoDirFetcher fetcher(Env::Default(), paths_.repo_dir, nullptr);
    tuf::UpdaterConfig c;
    c.metadata_dir = md.path();
    c.metadata_url = online::RepoDirFetcher::kMetadataUrl;
    c.target_base_url = online::RepoDirFetcher::kTargetsUrl;
    tuf::Updater updater(c, Env::Default(), &fetcher, clock);
    QP_RETURN_IF_ERROR(updater.Refresh());
    DeviceView view;
    QP_ASSIGN_OR_RETURN(view.improvements, updater.ListRoleTargets("improvements"));
    QP_ASSIGN_OR_RETURN(auto info, updater.GetTargetInfo("rollout.json"));
    if (!info) return Error(ErrorCode::kNotFound, "no rollout.json");
    QP_ASSIGN_OR_RETURN(auto bytes, updater.FetchTarget(*info));
    view.rollout = Json::parse(bytes.begin(), bytes.end());
    view.root_version = updater.trusted()->root().version;
    return view;
  }

  static TestDir* dir_;
  TestDir work_;
  RepoPaths paths_;
};

TestDir* PublisherTest::dir_ = nullptr;

TEST_F(PublisherTest, EveryPathADeviceCanTakeGivesTheSameTree) {
  Env* env = Env::Default();
  ASSERT_TRUE(PublishImprovement(env, Clock::Real(), paths_, dir_->Sub("imp-a"), 100).ok());
  auto s = PublishImprovement(env, Clock::Real(), paths_, dir_->Sub("imp-b"), 100);
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  auto view = ReadAsDevice();
  ASSERT_TRUE(view.ok()) << view.error().ToString();
  ASSERT_EQ(view->improvements.size(), 3u);  // a from base, b from base, b from a

  // Apply each patch, as downloaded and verified, to the tree it names.
  std::map<std::string, std::string> trees = {{"base", dir_->Sub("t17")}, {"a", dir_->Sub("t20")}};
  std::map<std::string, std::string> expected = {{"a", Digest(dir_->Sub("t20"))},
                                                 {"b", Digest(dir_->Sub("t22"))}};
  int n = 0;
  for (const auto& t : view->improvements) {
    const Json& q = t.file.custom["quietpatch"];
    std::string sha = t.file.hashes.at("sha256");
    std::size_t slash = t.path.rfind('/');
    std::string stored = paths_.repo_dir + "/targets/" + t.path.substr(0, slash + 1) + sha + "." +
                         t.path.substr(slash + 1);
    std::string out = work_.Sub("applied-" + std::to_string(n++));
    auto applied = delta::ApplyPatch(env, trees.at(q["from"]), stored, out, {});
    ASSERT_TRUE(applied.ok()) << t.path << ": " << applied.error().ToString();
    EXPECT_EQ(Digest(out), expected.at(q["label"])) << t.path;
    EXPECT_EQ(q["result_digest"], expected.at(q["label"]));
  }
  EXPECT_EQ(view->rollout["improvements"]["openssl/" + kBase + "/b"]["percent"], 100);
  // Publishing the same label twice is refused.
  EXPECT_EQ(PublishImprovement(env, Clock::Real(), paths_, dir_->Sub("imp-a"), 100).error().code(),
            ErrorCode::kAlreadyExists);
}

TEST_F(PublisherTest, RolloutHaltResumeAndRevokeReadBackThroughTheClient) {
  Env* env = Env::Default();
  Clock* clock = Clock::Real();
  ASSERT_TRUE(PublishImprovement(env, clock, paths_, dir_->Sub("imp-a"), 10).ok());
  std::string id = "openssl/" + kBase + "/a";
  ASSERT_TRUE(online::SetRollout(env, clock, paths_, Id(id), 50, std::nullopt, "").ok());
  auto v = ReadAsDevice();
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(v->rollout["improvements"][id]["percent"], 50);
  ASSERT_TRUE(online::SetRollout(env, clock, paths_, Id(id), std::nullopt, true, "failures").ok());
  v = ReadAsDevice();
  EXPECT_EQ(v->rollout["improvements"][id]["halted"], true);
  EXPECT_EQ(v->rollout["improvements"][id]["reason"], "failures");
  ASSERT_TRUE(online::SetRollout(env, clock, paths_, Id(id), std::nullopt, false, "").ok());
  v = ReadAsDevice();
  EXPECT_EQ(v->rollout["improvements"][id]["halted"], false);
  ASSERT_TRUE(Revoke(env, clock, paths_, Id(id)).ok());
  v = ReadAsDevice();
  ASSERT_EQ(v->improvements.size(), 1u);
  EXPECT_EQ(v->improvements[0].file.custom["quietpatch"]["revoked"], true);
  EXPECT_EQ(
      online::SetRollout(env, clock, paths_, Id("openssl/" + kBase + "/q"), 5, std::nullopt, "")
          .error()
          .code(),
      ErrorCode::kNotFound);
}

TEST_F(PublisherTest, KeyRotationsIncludingAThresholdChangeKeepDevicesUpdating) {
  Env* env = Env::Default();
  Clock* clock = Clock::Real();
  ASSERT_TRUE(PublishImprovement(env, clock, paths_, dir_->Sub("imp-a"), 100).ok());
  auto s = RotateKey(env, clock, paths_, "root", 1);
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  for (const char* role : {"timestamp", "snapshot", "targets", "improvements", "rollout"}) {
    s = RotateKey(env, clock, paths_, role, std::nullopt);
    ASSERT_TRUE(s.ok()) << role << ": " << s.error().ToString();
  }
  auto v = ReadAsDevice();
  ASSERT_TRUE(v.ok()) << v.error().ToString();
  EXPECT_EQ(v->root_version, 5u);  // root, then timestamp, snapshot, targets: one each
  EXPECT_EQ(v->improvements.size(), 1u);
  auto root = Json::parse(ReadTestFile(paths_.repo_dir + "/metadata/root.json"));
  EXPECT_EQ(root["signed"]["roles"]["root"]["threshold"], 1);
  EXPECT_TRUE(TestPathExists(paths_.keys_dir + "/retired/root-1.key"));
  // Still publishable with the new keys.
  ASSERT_TRUE(
      online::SetRollout(env, clock, paths_, Id("openssl/" + kBase + "/a"), 40, std::nullopt, "")
          .ok());
  EXPECT_TRUE(VerifyRepository(env, clock, paths_).ok());
}

TEST_F(PublisherTest, RefreshResignsWhatExpiresAndDevicesLaterAcceptIt) {
  Env* env = Env::Default();
  SimulatedClock later(Clock::Real()->Now() + std::chrono::hours(24 * 20));
  // Twenty days on, timestamp and snapshot have expired: devices refuse.
  auto v = ReadAsDevice(&later);
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.error().message().find("expired"), std::string::npos);
  ASSERT_TRUE(RefreshExpiring(env, &later, paths_, 2).ok());
  v = ReadAsDevice(&later);
  ASSERT_TRUE(v.ok()) << v.error().ToString();
}

TEST_F(PublisherTest, RefusesWithoutTheKeysAndChangesNothing) {
  Env* env = Env::Default();
  std::string before = ReadTestFile(paths_.repo_dir + "/metadata/timestamp.json");
  ASSERT_EQ(
      std::rename((paths_.keys_dir + "/improvements.key").c_str(), work_.Sub("away.key").c_str()),
      0);
  auto s = PublishImprovement(env, Clock::Real(), paths_, dir_->Sub("imp-a"), 100);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("improvements key"), std::string::npos);
  EXPECT_EQ(ReadTestFile(paths_.repo_dir + "/metadata/timestamp.json"), before);
}

TEST_F(PublisherTest, WritesStandardTufLayoutAndKeyFilesPrivate) {
  for (const char* f : {"1.root.json", "root.json", "timestamp.json", "1.snapshot.json",
                        "1.targets.json", "1.improvements.json", "1.rollout.json"}) {
    EXPECT_TRUE(TestPathExists(paths_.repo_dir + "/metadata/" + f)) << f;
  }
  auto names = Env::Default()->ListDir(paths_.keys_dir);
  ASSERT_TRUE(names.ok());
  for (const auto& n : *names) {
    auto info = Env::Default()->Stat(paths_.keys_dir + "/" + n);
    if (info->type == FileType::kRegular) {
      EXPECT_EQ(info->mode, 0600u) << n;
    }
  }
  auto ts = Json::parse(ReadTestFile(paths_.repo_dir + "/metadata/timestamp.json"));
  EXPECT_EQ(ts["signed"]["_type"], "timestamp");
  EXPECT_EQ(ts["signed"]["spec_version"], "1.0.31");
  EXPECT_TRUE(ts["signed"]["meta"]["snapshot.json"].contains("hashes"));
}

TEST_F(PublisherTest, BundleHoldsWhatAnOfflineDeviceNeeds) {
  Env* env = Env::Default();
  ASSERT_TRUE(PublishImprovement(env, Clock::Real(), paths_, dir_->Sub("imp-a"), 100).ok());
  std::string file = work_.Sub("a.qpbundle");
  ASSERT_TRUE(MakeBundle(env, Clock::Real(), paths_, Id("openssl/" + kBase + "/a"), file).ok());
  std::string bytes = ReadTestFile(file);
  auto files = tuf::ParseBundle(std::span<const std::uint8_t>(
      reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size()));
  ASSERT_TRUE(files.ok());
  TestDir md;
  WriteTestFile(md.Sub("root.json"), ReadTestFile(paths_.repo_dir + "/metadata/1.root.json"));
  tuf::BundleFetcher fetcher(*files);
  tuf::UpdaterConfig c{md.path(), tuf::BundleFetcher::kMetadataUrl,
                       tuf::BundleFetcher::kTargetsUrl};
  tuf::Updater updater(c, env, &fetcher, Clock::Real());
  auto listed = updater.ListRoleTargets("improvements");
  ASSERT_TRUE(listed.ok()) << listed.error().ToString();
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_TRUE(updater.FetchTarget((*listed)[0]).ok());
}

// A tree as dpkg leaves a package's files for a component: regular files only.
std::string RegularFilesOnly(const TestDir& dir, const std::string& name) {
  std::string tree = UnpackTestDeb(dir, name);
  std::string cmd =
      "find '" + tree + "' -type l -delete && find '" + tree + "' -depth -type d -empty -delete";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  return tree;
}

TEST_F(PublisherTest, BuildsFromDebianPackagesForSeveralBasesInOneImprovement) {
  Env* env = Env::Default();
  const std::string v17 = "3.0.17-1~deb12u2", v20 = "3.0.20-1~deb12u2";
  BuildSpec spec;
  spec.cves = {"CVE-2025-9230"};
  spec.out_dir = work_.Sub("imp");
  auto s = BuildImprovementFromDebs(
      env, paths_, spec,
      {TestDeb("libssl3_" + v17 + "_amd64"), TestDeb("libssl3_" + v20 + "_amd64")},
      TestDeb("libssl3_3.0.22-1~deb12u2_amd64"));
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_FALSE(TestPathExists(work_.Sub("imp.unpacked")));
  auto built = ReadBuiltImprovement(env, work_.Sub("imp"));
  ASSERT_TRUE(built.ok()) << built.error().ToString();
  ASSERT_EQ(built->Ids().size(), 2u);
  EXPECT_EQ(built->Ids()[0].ToString(), "libssl3/" + v17 + "/a");  // from the control fields
  EXPECT_EQ(built->Ids()[1].ToString(), "libssl3/" + v20 + "/a");
  for (const auto& p : built->patches) EXPECT_EQ(p.target.platform, "linux-x86_64");

  s = PublishImprovement(env, Clock::Real(), paths_, work_.Sub("imp"), 100);
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  auto view = ReadAsDevice();
  ASSERT_TRUE(view.ok()) << view.error().ToString();
  ASSERT_EQ(view->improvements.size(), 2u);
  // Each patch turns its base, as dpkg installed it, into 3.0.22's files, and names the
  // trees by the digests a device computes of dpkg's files.
  TestDir trees;
  std::map<std::string, std::string> bases = {
      {v17, RegularFilesOnly(trees, "libssl3_" + v17 + "_amd64")},
      {v20, RegularFilesOnly(trees, "libssl3_" + v20 + "_amd64")}};
  const std::string expected = Digest(RegularFilesOnly(trees, "libssl3_3.0.22-1~deb12u2_amd64"));
  for (const auto& t : view->improvements) {
    const Json& q = t.file.custom["quietpatch"];
    const std::string base = q["base"];
    EXPECT_EQ(q["source_digest"], Digest(bases.at(base))) << t.path;
    EXPECT_EQ(q["result_digest"], expected);
    std::size_t slash = t.path.rfind('/');
    std::string stored = paths_.repo_dir + "/targets/" + t.path.substr(0, slash + 1) +
                         t.file.hashes.at("sha256") + "." + t.path.substr(slash + 1);
    std::string out = work_.Sub("applied-" + base);
    auto applied = delta::ApplyPatch(env, bases.at(base), stored, out, {});
    ASSERT_TRUE(applied.ok()) << t.path << ": " << applied.error().ToString();
    EXPECT_EQ(Digest(out), expected) << t.path;
    EXPECT_EQ(view->rollout["improvements"]["libssl3/" + base + "/a"]["percent"], 100);
  }
}

TEST_F(PublisherTest, APackageTreeLeavesOutConffilesAndSymlinks) {
  // A package of our own, built by dpkg-deb: a library, a symlink to it and a conffile.
  for (const char* v : {"1.0-1", "1.0-2"}) {
    std::string root = work_.Sub(std::string("pkg-") + v);
    ASSERT_EQ(
        std::system(
            ("mkdir -p '" + root + "/DEBIAN' '" + root + "/etc' '" + root + "/usr/lib'").c_str()),
        0);
    WriteTestFile(root + "/DEBIAN/control", std::string("Package: libdemo1\nVersion: ") + v +
                                                "\nArchitecture: arm64\nMaintainer: t <t@t>\n"
                                                "Description: demo\n");
    WriteTestFile(root + "/DEBIAN/conffiles", "/etc/demo.conf\n");
    WriteTestFile(root + "/etc/demo.conf", std::string("setting = ") + v + "\n");
    WriteTestFile(root + "/usr/lib/libdemo.so.1", std::string(4096, 'x') + v);
    std::string cmd = "ln -s libdemo.so.1 '" + root + "/usr/lib/libdemo.so' && dpkg-deb -Zgzip " +
                      "--root-owner-group --build '" + root + "' '" + root + ".deb' > /dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0);
  }
  BuildSpec spec;
  spec.out_dir = work_.Sub("imp");
  auto s = BuildImprovementFromDebs(Env::Default(), RepoPaths{"", ""}, spec,
                                    {work_.Sub("pkg-1.0-1.deb")}, work_.Sub("pkg-1.0-2.deb"));
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  auto built = ReadBuiltImprovement(Env::Default(), work_.Sub("imp"));
  ASSERT_TRUE(built.ok());
  ASSERT_EQ(built->patches.size(), 1u);
  EXPECT_EQ(built->patches[0].target.id.ToString(), "libdemo1/1.0-1/a");
  EXPECT_EQ(built->patches[0].target.platform, "linux-aarch64");
  TestDir expect;
  ASSERT_EQ(std::system(("mkdir -p '" + expect.Sub("usr/lib") + "'").c_str()), 0);
  WriteTestFile(expect.Sub("usr/lib/libdemo.so.1"), std::string(4096, 'x') + "1.0-2");
  EXPECT_EQ(built->patches[0].target.result_digest, Digest(expect.path()));
}

TEST_F(PublisherTest, RefusesPackagesThatAreNotOneComponent) {
  Env* env = Env::Default();
  BuildSpec spec;
  spec.out_dir = work_.Sub("imp");
  // Two different packages.
  auto s = BuildImprovementFromDebs(env, RepoPaths{"", ""}, spec,
                                    {TestDeb("libc6_2.36-9+deb12u7_amd64")},
                                    TestDeb("libssl3_3.0.22-1~deb12u2_amd64"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(s.error().message().find("is libc6 for amd64"), std::string::npos)
      << s.error().message();
  // Not a package at all.
  WriteTestFile(work_.Sub("junk.deb"), "!<arch>\nnot really\n");
  s = BuildImprovementFromDebs(env, RepoPaths{"", ""}, spec, {work_.Sub("junk.deb")},
                               TestDeb("libssl3_3.0.22-1~deb12u2_amd64"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kInvalidArgument) << s.error().ToString();
  // Nothing is left of either attempt.
  EXPECT_FALSE(TestPathExists(work_.Sub("imp")));
  EXPECT_FALSE(TestPathExists(work_.Sub("imp.unpacked")));
}

}  // namespace
}  // namespace qp::publish
