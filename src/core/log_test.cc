#include "core/log.h"

#include <gtest/gtest.h>
#include <stdlib.h>

namespace qp {
namespace {

TEST(LogTest, AcceptsKnownLevelsAndRejectsOthers) {
  EXPECT_TRUE(InitLogging("debug", LogTarget::kStderr).ok());
  EXPECT_EQ(spdlog::default_logger()->level(), spdlog::level::debug);
  EXPECT_TRUE(InitLogging("off", LogTarget::kStderr).ok());
  EXPECT_EQ(spdlog::default_logger()->level(), spdlog::level::off);
  auto bad = InitLogging("loud");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
}

TEST(LogTest, JournalFormatCarriesPriorityPrefixes) {
  ASSERT_TRUE(InitLogging("info", LogTarget::kJournal).ok());
  testing::internal::CaptureStderr();
  spdlog::warn("disk almost full");
  spdlog::error("install failed");
  spdlog::debug("hidden at info level");
  spdlog::default_logger()->flush();
  std::string out = testing::internal::GetCapturedStderr();
  EXPECT_EQ(out, "<4>disk almost full\n<3>install failed\n");
}

TEST(LogTest, StderrIsJournalOnlyWhenTheStreamMatches) {
  ::setenv("JOURNAL_STREAM", "1:2", 1);
  EXPECT_FALSE(StderrIsJournal());
  ::unsetenv("JOURNAL_STREAM");
  EXPECT_FALSE(StderrIsJournal());
}

}  // namespace
}  // namespace qp
