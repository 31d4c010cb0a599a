#include "core/env.h"

#include <gtest/gtest.h>

#include "core/test_dir.h"

namespace qp {
namespace {

std::span<const std::uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

TEST(EnvTest, WritesReadsAndStats) {
  TestDir dir;
  Env* env = Env::Default();
  auto f = env->NewWritableFile(dir.Sub("a"), CreateMode::kExclusive, 0600);
  ASSERT_TRUE(f.ok()) << f.error().ToString();
  ASSERT_TRUE((*f)->Append(Bytes("hello world")).ok());
  ASSERT_TRUE((*f)->Sync().ok());
  ASSERT_TRUE((*f)->Close().ok());

  auto info = env->Stat(dir.Sub("a"));
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->type, FileType::kRegular);
  EXPECT_EQ(info->size, 11u);
  EXPECT_EQ(info->mode, 0600u);

  auto r = env->NewRandomAccessFile(dir.Sub("a"));
  ASSERT_TRUE(r.ok());
  std::uint8_t buf[5];
  auto n = (*r)->ReadAt(6, buf);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 5u);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(buf), 5), "world");
  EXPECT_EQ(*(*r)->ReadAt(11, buf), 0u);
}

TEST(EnvTest, ExclusiveCreateRefusesExistingPath) {
  TestDir dir;
  WriteTestFile(dir.Sub("a"), "x");
  auto f = Env::Default()->NewWritableFile(dir.Sub("a"), CreateMode::kExclusive);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(ReadTestFile(dir.Sub("a")), "x");
}

TEST(EnvTest, WritingNeverFollowsASymlinkAtThePath) {
  TestDir dir;
  Env* env = Env::Default();
  WriteTestFile(dir.Sub("victim"), "precious");
  ASSERT_TRUE(env->Symlink("victim", dir.Sub("planted")).ok());
  for (CreateMode mode : {CreateMode::kTruncate, CreateMode::kAppend, CreateMode::kExclusive}) {
    EXPECT_FALSE(env->NewWritableFile(dir.Sub("planted"), mode, 0600).ok());
  }
  EXPECT_EQ(ReadTestFile(dir.Sub("victim")), "precious");
}

TEST(EnvTest, RenameExchangeSwapsDirectories) {
  TestDir dir;
  Env* env = Env::Default();
  ASSERT_TRUE(env->MakeDir(dir.Sub("live")).ok());
  ASSERT_TRUE(env->MakeDir(dir.Sub("staged")).ok());
  WriteTestFile(dir.Sub("live/f"), "old");
  WriteTestFile(dir.Sub("staged/f"), "new");
  ASSERT_TRUE(env->RenameExchange(dir.Sub("live"), dir.Sub("staged")).ok());
  EXPECT_EQ(ReadTestFile(dir.Sub("live/f")), "new");
  EXPECT_EQ(ReadTestFile(dir.Sub("staged/f")), "old");
  ASSERT_TRUE(env->SyncDir(dir.path()).ok());
}

TEST(EnvTest, LinksSymlinksListingAndRemoval) {
  TestDir dir;
  Env* env = Env::Default();
  WriteTestFile(dir.Sub("f"), "data");
  ASSERT_TRUE(env->Link(dir.Sub("f"), dir.Sub("g")).ok());
  EXPECT_EQ(env->Stat(dir.Sub("f"))->links, 2u);
  ASSERT_TRUE(env->Symlink("f", dir.Sub("s")).ok());
  EXPECT_EQ(env->Stat(dir.Sub("s"))->type, FileType::kSymlink);
  EXPECT_EQ(*env->ReadLink(dir.Sub("s")), "f");
  ASSERT_TRUE(env->MakeDir(dir.Sub("d"), 0700).ok());
  EXPECT_EQ(env->Stat(dir.Sub("d"))->mode, 0700u);
  ASSERT_TRUE(env->Chmod(dir.Sub("f"), 0640).ok());
  EXPECT_EQ(env->Stat(dir.Sub("g"))->mode, 0640u);
  EXPECT_EQ(*env->ListDir(dir.path()), (std::vector<std::string>{"d", "f", "g", "s"}));
  ASSERT_TRUE(env->Unlink(dir.Sub("g")).ok());
  ASSERT_TRUE(env->RemoveDir(dir.Sub("d")).ok());
  EXPECT_EQ(env->Stat(dir.Sub("g")).error().code(), ErrorCode::kNotFound);
  auto space = env->StatFs(dir.path());
  ASSERT_TRUE(space.ok());
  EXPECT_GT(space->available_bytes, 0u);
}

TEST(EnvTest, ErrorsNameThePath) {
  Env* env = Env::Default();
  auto r = env->NewRandomAccessFile("/nonexistent/qp/file");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(r.error().message().find("/nonexistent/qp/file"), std::string::npos);
  TestDir dir;
  EXPECT_EQ(env->NewRandomAccessFile(dir.path()).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_FALSE(env->RenameExchange(dir.Sub("x"), dir.Sub("y")).ok());
}

TEST(EnvTest, PathHelpers) {
  EXPECT_EQ(DirName("a/b/c"), "a/b");
  EXPECT_EQ(DirName("c"), ".");
  EXPECT_EQ(DirName("/c"), "/");
  EXPECT_EQ(BaseName("a/b/c"), "c");
  EXPECT_EQ(BaseName("c"), "c");
  EXPECT_EQ(JoinPath("a", "b"), "a/b");
  EXPECT_EQ(JoinPath("a/", "b"), "a/b");
  EXPECT_EQ(JoinPath("", "b"), "b");
}

}  // namespace
}  // namespace qp
