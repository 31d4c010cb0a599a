#include "store/command.h"

#include <gtest/gtest.h>

namespace qp::store {
namespace {

TEST(CommandTest, CapturesOutputAndExitStatus) {
  auto r = RunProcess({"sh", "-c", "echo hello; echo oops >&2; exit 3"}, std::chrono::seconds(10));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_FALSE(r->ok());
  EXPECT_NE(r->output.find("hello"), std::string::npos);
  EXPECT_EQ(r->Describe(), "exit status 3: oops");
}

TEST(CommandTest, PassesExtraEnvironment) {
  auto r = RunProcess({"sh", "-c", "echo $QP_COMPONENT"}, std::chrono::seconds(10),
                      {"QP_COMPONENT=openssl"});
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->ok());
  EXPECT_EQ(r->output, "openssl\n");
}

TEST(CommandTest, KillsTheWholeProcessGroupAtTheTimeout) {
  auto start = std::chrono::steady_clock::now();
  auto r = RunProcess({"sh", "-c", "sleep 30 & sleep 30"}, std::chrono::milliseconds(200));
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(CommandTest, MissingProgramIsAnError) {
  auto r = RunProcess({"/nonexistent/quietpatch-health"}, std::chrono::seconds(1));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kNotFound);
}

}  // namespace
}  // namespace qp::store
