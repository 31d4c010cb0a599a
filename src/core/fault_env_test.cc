#include "core/fault_env.h"

#include <gtest/gtest.h>

#include <cerrno>

#include "core/test_dir.h"

namespace qp {
namespace {

std::span<const std::uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

class FaultEnvTest : public testing::Test {
 protected:
  TestDir dir_;
  TestDir shadow_;
  FaultInjectionEnv env_{Env::Default(), shadow_.path()};
};

TEST_F(FaultEnvTest, CountsOperationsAndFailsTheChosenOneOnce) {
  env_.FailOperation(2, EIO);
  auto f = env_.NewWritableFile(dir_.Sub("a"), CreateMode::kTruncate, 0644);
  ASSERT_TRUE(f.ok());
  Status s = (*f)->Append(Bytes("x"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kIo);
  EXPECT_NE(s.error().message().find("injected at operation 2"), std::string::npos);
  EXPECT_TRUE((*f)->Append(Bytes("y")).ok());
  EXPECT_EQ(env_.operation_count(), 3);
}

TEST_F(FaultEnvTest, FailFromOperationKeepsFailing) {
  env_.FailFromOperation(1, ENOSPC);
  EXPECT_EQ(env_.MakeDir(dir_.Sub("d"), 0755).error().code(), ErrorCode::kNoSpace);
  EXPECT_EQ(env_.MakeDir(dir_.Sub("e"), 0755).error().code(), ErrorCode::kNoSpace);
}

TEST_F(FaultEnvTest, CrashStopsEverythingUntilCleared) {
  env_.CrashAtOperation(1);
  EXPECT_EQ(env_.MakeDir(dir_.Sub("d"), 0755).error().code(), ErrorCode::kCrashed);
  EXPECT_TRUE(env_.crashed());
  EXPECT_FALSE(TestPathExists(dir_.Sub("d")));
  EXPECT_EQ(env_.Stat(dir_.path()).error().code(), ErrorCode::kCrashed);
  env_.ClearCrash();
  EXPECT_TRUE(env_.MakeDir(dir_.Sub("d"), 0755).ok());
}

TEST_F(FaultEnvTest, DropsUnsyncedFileDataToTheLastSync) {
  auto f = env_.NewWritableFile(dir_.Sub("a"), CreateMode::kExclusive, 0644);
  ASSERT_TRUE(f.ok());
  ASSERT_TRUE((*f)->Append(Bytes("synced")).ok());
  ASSERT_TRUE((*f)->Sync().ok());
  ASSERT_TRUE((*f)->Append(Bytes("+lost")).ok());
  ASSERT_TRUE(env_.SyncDir(dir_.path()).ok());
  EXPECT_TRUE(env_.MayBeLost(dir_.Sub("a")));
  ASSERT_TRUE(env_.DropUnsyncedChanges().ok());
  EXPECT_EQ(ReadTestFile(dir_.Sub("a")), "synced");
}

TEST_F(FaultEnvTest, DropsUnsyncedCreationsRenamesAndRemovals) {
  WriteTestFile(dir_.Sub("kept"), "k");
  WriteTestFile(dir_.Sub("target"), "old target");
  WriteTestFile(dir_.Sub("src"), "new target");
  ASSERT_TRUE(env_.MakeDir(dir_.Sub("newdir"), 0755).ok());
  ASSERT_TRUE(env_.Unlink(dir_.Sub("kept")).ok());
  ASSERT_TRUE(env_.Rename(dir_.Sub("src"), dir_.Sub("target")).ok());
  ASSERT_TRUE(env_.Symlink("target", dir_.Sub("sym")).ok());
  EXPECT_EQ(env_.UnsyncedChanges().size(), 4u);
  ASSERT_TRUE(env_.DropUnsyncedChanges().ok());
  EXPECT_FALSE(TestPathExists(dir_.Sub("newdir")));
  EXPECT_FALSE(TestPathExists(dir_.Sub("sym")));
  EXPECT_EQ(ReadTestFile(dir_.Sub("kept")), "k");
  EXPECT_EQ(ReadTestFile(dir_.Sub("target")), "old target");
  EXPECT_EQ(ReadTestFile(dir_.Sub("src")), "new target");
  EXPECT_TRUE(env_.UnsyncedChanges().empty());
}

TEST_F(FaultEnvTest, UnsyncedExchangeIsUndone) {
  ASSERT_TRUE(env_.MakeDir(dir_.Sub("live"), 0755).ok());
  ASSERT_TRUE(env_.MakeDir(dir_.Sub("staged"), 0755).ok());
  ASSERT_TRUE(env_.SyncDir(dir_.path()).ok());
  WriteTestFile(dir_.Sub("live/f"), "old");
  WriteTestFile(dir_.Sub("staged/f"), "new");
  ASSERT_TRUE(env_.RenameExchange(dir_.Sub("live"), dir_.Sub("staged")).ok());
  EXPECT_TRUE(env_.MayBeLost(dir_.Sub("live")));
  ASSERT_TRUE(env_.DropUnsyncedChanges().ok());
  EXPECT_EQ(ReadTestFile(dir_.Sub("live/f")), "old");
}

TEST_F(FaultEnvTest, SyncedDirectoryChangesSurvive) {
  WriteTestFile(dir_.Sub("src"), "v");
  ASSERT_TRUE(env_.Rename(dir_.Sub("src"), dir_.Sub("dst")).ok());
  ASSERT_TRUE(env_.SyncDir(dir_.path()).ok());
  EXPECT_FALSE(env_.MayBeLost(dir_.Sub("dst")));
  ASSERT_TRUE(env_.DropUnsyncedChanges().ok());
  EXPECT_EQ(ReadTestFile(dir_.Sub("dst")), "v");
  EXPECT_TRUE(Env::Default()->ListDir(shadow_.path())->empty());
}

}  // namespace
}  // namespace qp
