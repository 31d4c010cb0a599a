#include "core/tree_writer.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cerrno>

#include "core/fault_env.h"
#include "core/test_dir.h"

namespace qp {
namespace {

std::vector<std::string> Listing(const std::string& dir) { return *Env::Default()->ListDir(dir); }

Status WriteFile(TreeSink& sink, const std::string& path, const std::string& content,
                 std::uint32_t mode) {
  QP_ASSIGN_OR_RETURN(auto f, sink.NewFile(path));
  QP_RETURN_IF_ERROR(f->Append(std::span<const std::uint8_t>(
      reinterpret_cast<const std::uint8_t*>(content.data()), content.size())));
  QP_RETURN_IF_ERROR(f->Sync());
  QP_RETURN_IF_ERROR(f->Close());
  return sink.SetFileMode(path, mode);
}

Status Produce(TreeSink& sink) {
  QP_RETURN_IF_ERROR(sink.MakeDirectory("bin", 0755));
  QP_RETURN_IF_ERROR(WriteFile(sink, "bin/tool", "#!/bin/sh\n", 0755));
  QP_RETURN_IF_ERROR(sink.MakeDirectory("share", 0555));  // read-only, set at the end
  QP_RETURN_IF_ERROR(WriteFile(sink, "share/README", "hello\n", 0644));
  return sink.MakeSymlink("tool", "bin/tool");
}

std::uint32_t Mode(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

TEST(TreeWriterTest, ATreeAppearsWholeWithItsModes) {
  TestDir dir;
  Status s = WriteNewTree(Env::Default(), dir.Sub("out"), {}, Produce);
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_EQ(Listing(dir.path()), std::vector<std::string>{"out"});
  EXPECT_EQ(ReadTestFile(dir.Sub("out/share/README")), "hello\n");
  EXPECT_EQ(Mode(dir.Sub("out/bin/tool")), 0755u);
  EXPECT_EQ(Mode(dir.Sub("out/share")), 0555u);
  EXPECT_EQ(*Env::Default()->ReadLink(dir.Sub("out/tool")), "bin/tool");
  EXPECT_EQ(WriteNewTree(Env::Default(), dir.Sub("out"), {}, Produce).error().code(),
            ErrorCode::kAlreadyExists);
}

TEST(TreeWriterTest, AProducerThatFailsLeavesNothing) {
  TestDir dir;
  Status s = WriteNewTree(Env::Default(), dir.Sub("out"), {}, [](TreeSink& sink) -> Status {
    QP_RETURN_IF_ERROR(Produce(sink));
    return Error(ErrorCode::kCorrupt, "patch record 3: truncated");
  });
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().ToString(), "corrupt: patch record 3: truncated");
  EXPECT_TRUE(Listing(dir.path()).empty());
}

TEST(TreeWriterTest, NoSpaceAtAnyStepLeavesNothing) {
  int failures_seen = 0;
  for (int op = 1; op <= 60; ++op) {
    TestDir dir;
    TestDir shadow;
    FaultInjectionEnv env(Env::Default(), shadow.path());
    env.FailOperation(op, ENOSPC);
    Status s = WriteNewTree(&env, dir.Sub("out"), {}, Produce);
    if (op > env.operation_count()) {
      ASSERT_TRUE(s.ok());
      break;
    }
    ++failures_seen;
    ASSERT_FALSE(s.ok()) << "operation " << op;
    auto left = Listing(dir.path());
    // Only the final directory fsync comes after the rename: then the tree is there (and
    // the failure is reported); before it, nothing is.
    if (!left.empty()) {
      EXPECT_EQ(left, std::vector<std::string>{"out"}) << "operation " << op;
      EXPECT_EQ(ReadTestFile(dir.Sub("out/share/README")), "hello\n");
    }
  }
  EXPECT_GT(failures_seen, 15);
}

TEST(TreeWriterTest, ASingleFileTreeIsOneFileAndLinksOnlyWhenAllowed) {
  TestDir dir;
  WriteTestFile(dir.Sub("old"), "same\n");
  auto link = [&](TreeSink& sink) -> Status {
    QP_ASSIGN_OR_RETURN(bool linked, sink.LinkFile("", dir.Sub("old")));
    if (!linked) return WriteFile(sink, "", "same\n", 0644);
    return OkStatus();
  };
  NewTreeOptions single;
  single.single_file = true;
  ASSERT_TRUE(WriteNewTree(Env::Default(), dir.Sub("copied"), single, link).ok());
  single.link_files = true;
  ASSERT_TRUE(WriteNewTree(Env::Default(), dir.Sub("linked"), single, link).ok());
  auto old_info = Env::Default()->Stat(dir.Sub("old"));
  EXPECT_NE(Env::Default()->Stat(dir.Sub("copied"))->inode, old_info->inode);
  EXPECT_EQ(Env::Default()->Stat(dir.Sub("linked"))->inode, old_info->inode);
  EXPECT_EQ(ReadTestFile(dir.Sub("copied")), "same\n");
  EXPECT_FALSE(WriteNewTree(Env::Default(), dir.Sub("x"), single, [](TreeSink& sink) {
                 return sink.MakeDirectory("d", 0755);
               }).ok());
}

}  // namespace
}  // namespace qp
