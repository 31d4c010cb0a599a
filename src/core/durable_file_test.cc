#include "core/durable_file.h"

#include <gtest/gtest.h>

#include <cerrno>

#include "core/fault_env.h"
#include "core/test_dir.h"

namespace qp {
namespace {

std::vector<std::string> Listing(const std::string& dir) { return *Env::Default()->ListDir(dir); }

TEST(DurableFileTest, WritesAndReplacesAtomically) {
  TestDir dir;
  Env* env = Env::Default();
  ASSERT_TRUE(WriteFileDurably(env, dir.Sub("state.json"), "v1").ok());
  EXPECT_EQ(ReadTestFile(dir.Sub("state.json")), "v1");
  ASSERT_TRUE(WriteFileDurably(env, dir.Sub("state.json"), "version two", 0600).ok());
  EXPECT_EQ(ReadTestFile(dir.Sub("state.json")), "version two");
  EXPECT_EQ(env->Stat(dir.Sub("state.json"))->mode, 0600u);
  EXPECT_EQ(Listing(dir.path()), std::vector<std::string>{"state.json"});
}

// ENOSPC at each operation of a durable write leaves the old file and no temp file.
TEST(DurableFileTest, NoSpaceAtAnyStepKeepsOldFileAndLeavesNoTemp) {
  int failures_seen = 0;
  for (int op = 1; op <= 8; ++op) {
    TestDir dir;
    TestDir shadow;
    WriteTestFile(dir.Sub("f"), "old content");
    FaultInjectionEnv env(Env::Default(), shadow.path());
    env.FailOperation(op, ENOSPC);
    Status s = WriteFileDurably(&env, dir.Sub("f"), "new content");
    if (op > env.operation_count()) {
      ASSERT_TRUE(s.ok());
      break;
    }
    ++failures_seen;
    ASSERT_FALSE(s.ok()) << "operation " << op;
    EXPECT_EQ(s.error().code(), ErrorCode::kNoSpace) << s.error().ToString();
    if (op <= 5) {  // create, append, sync, close, rename: the old file is untouched
      EXPECT_EQ(ReadTestFile(dir.Sub("f")), "old content") << "operation " << op;
    } else {  // the directory fsync failed after the rename: new content, reported failure
      EXPECT_EQ(ReadTestFile(dir.Sub("f")), "new content");
    }
    EXPECT_EQ(Listing(dir.path()), std::vector<std::string>{"f"}) << "operation " << op;
  }
  EXPECT_EQ(failures_seen, 6);  // create, append, fsync, close, rename, fsync dir
}

TEST(DurableFileTest, CrashAfterRenameBeforeDirSyncIsReportedAsMayBeLost) {
  TestDir dir;
  TestDir shadow;
  WriteTestFile(dir.Sub("f"), "old");
  FaultInjectionEnv env(Env::Default(), shadow.path());
  env.CrashAtOperation(6);  // create, append, fsync, close, rename, [fsync dir]
  Status s = WriteFileDurably(&env, dir.Sub("f"), "new");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kCrashed);
  EXPECT_TRUE(env.MayBeLost(dir.Sub("f")));
  auto unsynced = env.UnsyncedChanges();
  // The temp file's creation and its rename over f: neither is durable yet.
  ASSERT_EQ(unsynced.size(), 2u);
  EXPECT_EQ(unsynced[0].rfind("create " + dir.Sub("f.qp-tmp-"), 0), 0u) << unsynced[0];
  EXPECT_EQ(unsynced[1].rfind("rename ", 0), 0u) << unsynced[1];
  EXPECT_NE(unsynced[1].find("-> " + dir.Sub("f") + " (may be lost"), std::string::npos);
  // What the crash could lose is lost: the old file is back, the temp file is gone.
  ASSERT_TRUE(env.DropUnsyncedChanges().ok());
  EXPECT_EQ(ReadTestFile(dir.Sub("f")), "old");
  EXPECT_EQ(Listing(dir.path()), std::vector<std::string>{"f"});
}

TEST(DurableFileTest, CompletedWriteSurvivesACrash) {
  TestDir dir;
  TestDir shadow;
  FaultInjectionEnv env(Env::Default(), shadow.path());
  ASSERT_TRUE(WriteFileDurably(&env, dir.Sub("f"), "durable").ok());
  EXPECT_TRUE(env.UnsyncedChanges().empty());
  EXPECT_FALSE(env.MayBeLost(dir.Sub("f")));
  env.CrashAtOperation(1);
  EXPECT_FALSE(WriteFileDurably(&env, dir.Sub("f"), "lost").ok());
  ASSERT_TRUE(env.DropUnsyncedChanges().ok());
  EXPECT_EQ(ReadTestFile(dir.Sub("f")), "durable");
}

TEST(DurableFileTest, RenameDurably) {
  TestDir dir;
  WriteTestFile(dir.Sub("a"), "x");
  ASSERT_TRUE(Env::Default()->MakeDir(dir.Sub("sub")).ok());
  ASSERT_TRUE(RenameDurably(Env::Default(), dir.Sub("a"), dir.Sub("sub/b")).ok());
  EXPECT_EQ(ReadTestFile(dir.Sub("sub/b")), "x");
  EXPECT_FALSE(TestPathExists(dir.Sub("a")));
}

TEST(DurableFileTest, ExclusiveCreate) {
  TestDir dir;
  std::vector<std::uint8_t> data = {1, 2, 3};
  ASSERT_TRUE(CreateFileExclusively(Env::Default(), dir.Sub("lock"), data, 0600).ok());
  Status again = CreateFileExclusively(Env::Default(), dir.Sub("lock"), {});
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(ReadTestFile(dir.Sub("lock")), std::string("\x01\x02\x03"));
}

TEST(DurableFileTest, ReadFileLimited) {
  TestDir dir;
  WriteTestFile(dir.Sub("f"), std::string(1000, 'x'));
  auto ok = ReadFileLimited(Env::Default(), dir.Sub("f"), 1000);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->size(), 1000u);
  auto big = ReadFileLimited(Env::Default(), dir.Sub("f"), 999);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.error().code(), ErrorCode::kTooLarge);
  EXPECT_NE(big.error().message().find("limit of 999"), std::string::npos);
  EXPECT_EQ(ReadFileLimited(Env::Default(), dir.Sub("none"), 10).error().code(),
            ErrorCode::kNotFound);
}

TEST(DurableFileTest, MakeDirsCreatesParents) {
  TestDir dir;
  ASSERT_TRUE(MakeDirs(Env::Default(), dir.Sub("a/b/c")).ok());
  EXPECT_EQ(Env::Default()->Stat(dir.Sub("a/b/c"))->type, FileType::kDirectory);
  ASSERT_TRUE(MakeDirs(Env::Default(), dir.Sub("a/b/c")).ok());
  WriteTestFile(dir.Sub("file"), "");
  EXPECT_FALSE(MakeDirs(Env::Default(), dir.Sub("file")).ok());
}

}  // namespace
}  // namespace qp
