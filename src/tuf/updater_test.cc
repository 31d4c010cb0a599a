// The client workflow against the attacks TUF defends against. Each test asserts what was
// requested, what was stored and what was refused.
#include "tuf/updater.h"

#include "tuf/updater_test_util.h"

namespace qp::tuf {
namespace {

using ::testing::ElementsAre;

constexpr auto kDay = std::chrono::hours(24);

TEST_F(ClientTest, FirstRefreshFetchesAndStoresTopLevelMetadataAsServed) {
  ASSERT_TRUE(Refresh().ok());
  EXPECT_THAT(repo_->metadata_requests,
              ElementsAre("2.root.json", "timestamp.json", "1.snapshot.json", "1.targets.json"));
  EXPECT_EQ(Stored("root"), Str(repo_->initial_root()));
  EXPECT_EQ(Stored("timestamp"), Served("timestamp.json"));
  EXPECT_EQ(Stored("snapshot"), Served("1.snapshot.json"));
  EXPECT_EQ(Stored("targets"), Served("1.targets.json"));
}

TEST_F(ClientTest, RefreshWithNothingNewFetchesOnlyRootAndTimestamp) {
  ASSERT_TRUE(Refresh().ok());
  ASSERT_TRUE(Refresh().ok());
  EXPECT_THAT(repo_->metadata_requests, ElementsAre("2.root.json", "timestamp.json"));
}

TEST_F(ClientTest, NonConsistentRepositoryUsesPlainNames) {
  ResetRepo(/*consistent=*/false, crypto::Scheme::kEd25519);
  ASSERT_TRUE(Refresh().ok());
  EXPECT_THAT(repo_->metadata_requests,
              ElementsAre("2.root.json", "timestamp.json", "snapshot.json", "targets.json"));
}

TEST_F(ClientTest, DownloadsAVerifiedTargetAndRefusesSubstitutedContent) {
  W().AddTarget("targets", "dir/file.txt", Bytes("genuine content"));
  ASSERT_TRUE(W().PublishAll().ok());
  Updater updater(Config(), Env::Default(), repo_.get(), &clock_);
  auto info = updater.GetTargetInfo("dir/file.txt");
  ASSERT_TRUE(info.ok() && info->has_value());
  std::string out = dir_.Sub("out.bin");
  ASSERT_TRUE(updater.DownloadTarget(**info, out).ok());
  EXPECT_EQ(ReadTestFile(out), "genuine content");
  EXPECT_TRUE(updater.IsDownloaded(**info, out));
  std::string sha = info->value().file.hashes.at("sha256");
  EXPECT_THAT(repo_->target_requests, ElementsAre("dir/" + sha + ".file.txt"));

  // Arbitrary installation: same length, other bytes.
  repo_->files()["targets/dir/" + sha + ".file.txt"] = Bytes("evil!! content");
  repo_->files()["targets/dir/" + sha + ".file.txt"].push_back('x');
  std::string out2 = dir_.Sub("out2.bin");
  auto s = updater.DownloadTarget(**info, out2);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kVerificationFailed);
  EXPECT_FALSE(TestPathExists(out2));
  EXPECT_EQ(ReadTestFile(out), "genuine content");
}

TEST_F(ClientTest, EndlessDataIsCutAtTheLengthLimit) {
  W().timestamp().unknown["padding"] = std::string(20000, 'x');
  ASSERT_TRUE(W().PublishTimestamp().ok());
  auto s = Refresh();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kTooLarge);
  EXPECT_EQ(Stored("timestamp"), "");

  // A target longer than its listed length.
  ResetRepo(true, crypto::Scheme::kEd25519);
  W().AddTarget("targets", "t", Bytes("short"));
  ASSERT_TRUE(W().PublishAll().ok());
  Updater updater(Config(), Env::Default(), repo_.get(), &clock_);
  auto info = updater.GetTargetInfo("t");
  ASSERT_TRUE(info.ok() && info->has_value());
  std::string sha = info->value().file.hashes.at("sha256");
  repo_->files()["targets/" + sha + ".t"] = Bytes("short, and then endless data");
  EXPECT_EQ(updater.DownloadTarget(**info, dir_.Sub("t")).error().code(), ErrorCode::kTooLarge);
  EXPECT_FALSE(TestPathExists(dir_.Sub("t")));
}

TEST_F(ClientTest, RejectsTimestampRollbackAndKeepsTheNewerOne) {
  std::string v1 = Served("timestamp.json");
  ASSERT_TRUE(W().PublishTimestamp().ok());
  ASSERT_TRUE(Refresh().ok());
  std::string v2 = Served("timestamp.json");
  repo_->files()["metadata/timestamp.json"] = Bytes(v1);
  auto s = Refresh();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("timestamp rollback"), std::string::npos);
  EXPECT_EQ(Stored("timestamp"), v2);
}

TEST_F(ClientTest, EqualTimestampVersionKeepsTheStoredOneAndSucceeds) {
  ASSERT_TRUE(Refresh().ok());
  std::string stored = Stored("timestamp");
  W().timestamp().unknown["note"] = "same version, other bytes";
  auto same_version = W().Sign("timestamp");
  ASSERT_TRUE(same_version.ok());
  repo_->files()["metadata/timestamp.json"] = *same_version;
  ASSERT_TRUE(Refresh().ok());
  EXPECT_EQ(Stored("timestamp"), stored);
}

// The online timestamp key signs a snapshot length of 2^40: the client refuses it before
// fetching anything, instead of buffering up to that length.
TEST_F(ClientTest, ASignedLengthAboveTheConfiguredCapIsRefusedBeforeFetching) {
  ASSERT_TRUE(Refresh().ok());
  ASSERT_TRUE(W().PublishSnapshot().ok());
  W().timestamp().snapshot_meta.length = std::uint64_t{1} << 40;
  W().timestamp().snapshot_meta.hashes.clear();
  W().timestamp().version += 1;
  auto bumped = W().Sign("timestamp");
  ASSERT_TRUE(bumped.ok());
  repo_->files()["metadata/timestamp.json"] = *bumped;
  Status s = Refresh();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kTooLarge) << s.error().ToString();
  EXPECT_NE(s.error().message().find("1099511627776 bytes, more than the 2000000"),
            std::string::npos)
      << s.error().ToString();
  for (const auto& url : repo_->metadata_requests) {
    EXPECT_EQ(url.find("snapshot"), std::string::npos) << "fetched " << url;
  }
  // A lower signed length still bounds the download.
  EXPECT_EQ(*Updater::DownloadCap("x", 100, 2000), 100u);
  EXPECT_EQ(*Updater::DownloadCap("x", std::nullopt, 2000), 2000u);
}

TEST_F(ClientTest, RejectsSnapshotRollbackListedInTimestamp) {
  ASSERT_TRUE(W().PublishSnapshot().ok());
  ASSERT_TRUE(W().PublishTimestamp().ok());
  ASSERT_TRUE(Refresh().ok());
  ASSERT_EQ(StoredVersion("snapshot"), 2u);
  // A newer timestamp that points back at snapshot version 1.
  W().timestamp().snapshot_meta.version = 1;
  W().timestamp().snapshot_meta.length.reset();
  W().timestamp().snapshot_meta.hashes.clear();
  ASSERT_TRUE(W().PublishTimestamp().ok());
  auto s = Refresh();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("snapshot rollback"), std::string::npos);
  EXPECT_EQ(StoredVersion("timestamp"), 2u);
  EXPECT_EQ(StoredVersion("snapshot"), 2u);
}

TEST_F(ClientTest, RejectsTargetsRollbackAndRemovalInSnapshot) {
  ASSERT_TRUE(W().PublishTargets().ok());
  ASSERT_TRUE(W().PublishSnapshot().ok());
  ASSERT_TRUE(W().PublishTimestamp().ok());
  ASSERT_TRUE(Refresh().ok());
  ASSERT_EQ(StoredVersion("targets"), 2u);

  W().snapshot().meta["targets.json"].version = 1;
  ASSERT_TRUE(W().PublishSnapshot().ok());
  ASSERT_TRUE(W().PublishTimestamp().ok());
  auto s = Refresh();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("targets.json version 1 is older"), std::string::npos);

  W().snapshot().meta.erase("targets.json");
  ASSERT_TRUE(W().PublishSnapshot().ok());
  ASSERT_TRUE(W().PublishTimestamp().ok());
  s = Refresh();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("targets.json is missing"), std::string::npos);
  EXPECT_EQ(StoredVersion("snapshot"), 2u);
  EXPECT_EQ(StoredVersion("targets"), 2u);
}

TEST_F(ClientTest, RejectsMixAndMatchOfSnapshotAndTargets) {
  ASSERT_TRUE(Refresh().ok());
  // A validly signed snapshot whose bytes differ from what timestamp vouches for.
  ASSERT_TRUE(W().PublishSnapshot().ok());
  ASSERT_TRUE(W().PublishTimestamp().ok());
  W().snapshot().unknown["x"] = 1;
  auto other = W().Sign("snapshot");
  ASSERT_TRUE(other.ok());
  repo_->files()["metadata/2.snapshot.json"] = *other;
  auto s = Refresh();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("snapshot"), std::string::npos);
  EXPECT_EQ(StoredVersion("snapshot"), 1u);

  // Targets whose version differs from what snapshot lists.
  ResetRepo(true, crypto::Scheme::kEd25519);
  std::string targets_v1 = Served("1.targets.json");
  ASSERT_TRUE(W().PublishTargets().ok());
  ASSERT_TRUE(W().PublishAll().ok());
  repo_->files()["metadata/2.targets.json"] = Bytes(targets_v1);
  s = Refresh();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("differs from the version 2"), std::string::npos);
  EXPECT_EQ(Stored("targets"), "");
}

TEST_F(ClientTest, RefusesExpiredMetadata) {
  clock_.Advance(2 * kDay);  // timestamp expires after 1 day
  auto s = Refresh();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("timestamp version 1 expired"), std::string::npos);
  EXPECT_EQ(Stored("timestamp"), "");

  // A fresh timestamp over an expired snapshot (7 days).
  clock_.Advance(8 * kDay);
  W().timestamp().expires = clock_.Now() + kDay;
  ASSERT_TRUE(W().PublishTimestamp().ok());
  s = Refresh();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("snapshot version 1 expired"), std::string::npos);

  // An expired root stops everything, even with fresh other metadata.
  clock_.Advance(400 * kDay);
  s = Refresh();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("root version 1 expired"), std::string::npos);
}

TEST_F(ClientTest, ExpiredStoredTimestampStillGuardsAgainstRollbackAndIsReplaced) {
  W().timestamp().expires = start_ + 7 * kDay;
  ASSERT_TRUE(W().PublishTimestamp().ok());  // v2, expires day 7
  ASSERT_TRUE(Refresh().ok());
  W().snapshot().expires = start_ + 30 * kDay;
  W().targets().expires = start_ + 30 * kDay;
  ASSERT_TRUE(W().PublishTargets().ok());
  ASSERT_TRUE(W().PublishSnapshot().ok());
  W().timestamp().expires = start_ + 21 * kDay;
  ASSERT_TRUE(W().PublishTimestamp().ok());  // v3
  std::string v3 = Served("timestamp.json");
  clock_.Advance(18 * kDay);  // the stored v2 has expired, v3 has not
  auto s = Refresh();
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_EQ(StoredVersion("timestamp"), 3u);
  EXPECT_EQ(StoredVersion("snapshot"), 2u);
  EXPECT_EQ(StoredVersion("targets"), 2u);
  // The expired v2 was still the reference: serving v1 now is a rollback.
  W().timestamp().version = 0;
  W().timestamp().expires = start_ + 40 * kDay;
  ASSERT_TRUE(W().PublishTimestamp().ok());  // v1, fresh
  s = Refresh();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(Stored("timestamp"), v3);
}

TEST_F(ClientTest, FastForwardRecoveryAfterTimestampKeyRotation) {
  ASSERT_TRUE(Refresh().ok());
  // An attacker with the timestamp key pushes version 1000.
  W().timestamp().version = 999;
  ASSERT_TRUE(W().PublishTimestamp().ok());
  ASSERT_TRUE(Refresh().ok());
  ASSERT_EQ(StoredVersion("timestamp"), 1000u);
  // The repository rotates the timestamp key away and starts over at version 2.
  std::string old_id = W().root().roles["timestamp"].keyids[0];
  W().RemoveRootRoleKey("timestamp", old_id);
  W().RemoveSigner("timestamp", old_id);
  repo_->AddKey("timestamp");
  ASSERT_TRUE(W().PublishRoot().ok());
  W().timestamp().version = 1;
  ASSERT_TRUE(W().PublishTimestamp().ok());
  auto s = Refresh();
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_EQ(StoredVersion("root"), 2u);
  EXPECT_EQ(StoredVersion("timestamp"), 2u);
}

TEST_F(ClientTest, KeyCompromiseBelowThresholdIsNotEnough) {
  repo_->AddKey("targets");
  W().root().roles["targets"].threshold = 2;
  ASSERT_TRUE(W().PublishRoot().ok());
  ASSERT_TRUE(W().PublishTargets().ok());
  ASSERT_TRUE(W().PublishAll().ok());
  ASSERT_TRUE(Refresh().ok());
  EXPECT_EQ(StoredVersion("targets"), 2u);
  // The attacker holds one of the two targets keys.
  std::string second = W().root().roles["targets"].keyids[1];
  W().RemoveSigner("targets", second);
  W().AddTarget("targets", "malware", Bytes("evil"));
  ASSERT_TRUE(W().PublishAll().ok());
  auto s = Refresh();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("1 of 2 required signatures"), std::string::npos);
  EXPECT_EQ(StoredVersion("targets"), 2u);
}

TEST_F(ClientTest, FollowsARootRotationChainWithThresholdChanges) {
  // v2: a second root key, threshold 2 (signed by old key and both new ones).
  repo_->AddKey("root");
  W().root().roles["root"].threshold = 2;
  ASSERT_TRUE(W().PublishRoot().ok());
  // v3: the first root key removed, a third one added; threshold stays 2.
  std::string first = W().root().roles["root"].keyids[0];
  repo_->AddKey("root");
  W().RemoveRootRoleKey("root", first);
  ASSERT_TRUE(W().PublishRoot().ok());
  W().RemoveSigner("root", first);
  // v4: threshold back to 1.
  W().root().roles["root"].threshold = 1;
  ASSERT_TRUE(W().PublishRoot().ok());
  ASSERT_TRUE(Refresh().ok());
  EXPECT_THAT(repo_->metadata_requests,
              ElementsAre("2.root.json", "3.root.json", "4.root.json", "5.root.json",
                          "timestamp.json", "1.snapshot.json", "1.targets.json"));
  EXPECT_EQ(Stored("root"), Served("4.root.json"));
}

TEST_F(ClientTest, RefusesRootNotSignedByTheTrustedKeys) {
  std::string old_id = W().root().roles["root"].keyids[0];
  W().RemoveRootRoleKey("root", old_id);
  W().RemoveSigner("root", old_id);
  repo_->AddKey("root");
  ASSERT_TRUE(W().PublishRoot().ok());
  auto s = Refresh();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("by the trusted root's keys"), std::string::npos);
  EXPECT_EQ(Stored("root"), Str(repo_->initial_root()));
}

TEST_F(ClientTest, RefusesRootWhoseVersionIsNotTheNext) {
  W().root().version = 2;  // published as 3, served as 2.root.json
  ASSERT_TRUE(W().PublishRoot().ok());
  repo_->files()["metadata/2.root.json"] = repo_->files()["metadata/3.root.json"];
  auto s = Refresh();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("claims version 3"), std::string::npos);
  EXPECT_EQ(Stored("root"), Str(repo_->initial_root()));
}

TEST_F(ClientTest, StoresTheNewRootEvenWhenItTurnsOutExpired) {
  W().root().expires = start_ - kDay;
  ASSERT_TRUE(W().PublishRoot().ok());
  auto s = Refresh();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("root version 2 expired"), std::string::npos);
  EXPECT_EQ(StoredVersion("root"), 2u);
}

TEST_F(ClientTest, AcceptsUnknownFieldsAndNonCanonicalServedJson) {
  W().timestamp().unknown["x-future-field"] = {{"z", 1}, {"a", "\xc3\xa9\n"}};
  ASSERT_TRUE(W().PublishTimestamp().ok());
  // Re-serve the same signed document with odd whitespace and key order.
  auto doc = ParseJson(Served("timestamp.json"));
  ASSERT_TRUE(doc.ok());
  std::string odd = "{ \"signed\" :\n" + (*doc)["signed"].dump(7) +
                    " ,\t\"signatures\": " + (*doc)["signatures"].dump() + "}";
  repo_->files()["metadata/timestamp.json"] = Bytes(odd);
  auto s = Refresh();
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_EQ(Stored("timestamp"), odd);
}

TEST_F(ClientTest, RejectsDuplicateSignaturesAndIgnoresInvalidOnes) {
  auto doc = ParseJson(Served("timestamp.json"));
  ASSERT_TRUE(doc.ok());
  Json twice = *doc;
  twice["signatures"].push_back(twice["signatures"][0]);
  repo_->files()["metadata/timestamp.json"] = Bytes(twice.dump());
  auto s = Refresh();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("more than one signature"), std::string::npos);
  EXPECT_EQ(Stored("timestamp"), "");

  // Empty, garbage and unknown-key signatures beside a valid one do not hurt.
  Json extra = *doc;
  extra["signatures"].push_back({{"keyid", std::string(64, 'f')}, {"sig", "00"}});
  extra["signatures"].push_back({{"keyid", std::string(64, 'e')}, {"sig", ""}});
  repo_->files()["metadata/timestamp.json"] = Bytes(extra.dump());
  ASSERT_TRUE(Refresh().ok());

  // Only invalid signatures: refused.
  Json bad = *doc;
  std::string sig = bad["signatures"][0]["sig"];
  sig[0] = sig[0] == '0' ? '1' : '0';
  bad["signatures"][0]["sig"] = sig;
  bad["signed"]["version"] = 7;
  repo_->files()["metadata/timestamp.json"] = Bytes(bad.dump());
  s = Refresh();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("0 of 1 required signatures"), std::string::npos);
  EXPECT_EQ(StoredVersion("timestamp"), 1u);
}

TEST_F(ClientTest, AFailedUpdateLeavesTheClientAbleToUpdate) {
  ASSERT_TRUE(W().PublishSnapshot().ok());
  ASSERT_TRUE(W().PublishTimestamp().ok());
  auto good = repo_->files()["metadata/2.snapshot.json"];
  repo_->files()["metadata/2.snapshot.json"] = Bytes("{not json");
  ASSERT_FALSE(Refresh().ok());
  EXPECT_EQ(StoredVersion("timestamp"), 2u);
  repo_->files()["metadata/2.snapshot.json"] = good;
  ASSERT_TRUE(Refresh().ok());
  EXPECT_EQ(StoredVersion("snapshot"), 2u);
}

class KeyTypeTest : public ClientTest, public ::testing::WithParamInterface<crypto::Scheme> {};

TEST_P(KeyTypeTest, RefreshesAndDownloadsWithEveryKeyType) {
  ResetRepo(true, GetParam());
  W().AddTarget("targets", "a.txt", Bytes("A"));
  ASSERT_TRUE(W().PublishAll().ok());
  Updater updater(Config(), Env::Default(), repo_.get(), &clock_);
  auto info = updater.GetTargetInfo("a.txt");
  ASSERT_TRUE(info.ok()) << info.error().ToString();
  ASSERT_TRUE(info->has_value());
  ASSERT_TRUE(updater.DownloadTarget(**info, dir_.Sub("a.txt")).ok());
  auto root = ParseJson(Stored("root"));
  ASSERT_TRUE(root.ok());
  EXPECT_EQ((*root)["signed"]["keys"].begin().value()["scheme"], crypto::SchemeName(GetParam()));
}

INSTANTIATE_TEST_SUITE_P(AllSchemes, KeyTypeTest,
                         ::testing::Values(crypto::Scheme::kEd25519, crypto::Scheme::kEcdsaP256,
                                           crypto::Scheme::kRsaPss));

TEST_F(ClientTest, UnknownHashAlgorithmFailsTheTarget) {
  W().AddTarget("targets", "f", Bytes("F"));
  W().targets().targets["f"].hashes["blake3"] = "00";
  ASSERT_TRUE(W().PublishAll().ok());
  Updater updater(Config(), Env::Default(), repo_.get(), &clock_);
  auto info = updater.GetTargetInfo("f");
  ASSERT_TRUE(info.ok() && info->has_value());
  auto s = updater.DownloadTarget(**info, dir_.Sub("f"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kUnsupported);
  EXPECT_FALSE(TestPathExists(dir_.Sub("f")));
}

}  // namespace
}  // namespace qp::tuf
