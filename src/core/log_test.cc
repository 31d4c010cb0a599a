#include "core/log.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <string>

#include "core/test_dir.h"

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

TEST(LogTest, WithoutTheJournalsSocketLinesCarryPriorityPrefixes) {
  ASSERT_TRUE(InitLogging("info", LogTarget::kJournal, "/nonexistent/journal/socket").ok());
  testing::internal::CaptureStderr();
  spdlog::warn("disk almost full");
  spdlog::error("install failed");
  spdlog::debug("hidden at info level");
  spdlog::default_logger()->flush();
  std::string out = testing::internal::GetCapturedStderr();
  EXPECT_EQ(out, "<4>disk almost full\n<3>install failed\n");
}

// Reads one datagram of journald's native protocol (both field forms) into a map.
std::map<std::string, std::string> ReceiveEntry(int fd) {
  std::string buf(65536, '\0');
  ssize_t n = ::recv(fd, buf.data(), buf.size(), MSG_DONTWAIT);
  std::map<std::string, std::string> fields;
  if (n <= 0) return fields;
  buf.resize(static_cast<std::size_t>(n));
  std::size_t at = 0;
  while (at < buf.size()) {
    std::size_t end = buf.find_first_of("=\n", at);
    if (end == std::string::npos) break;
    std::string name = buf.substr(at, end - at);
    if (buf[end] == '=') {
      std::size_t nl = buf.find('\n', end);
      fields[name] = buf.substr(end + 1, nl - end - 1);
      at = nl + 1;
      continue;
    }
    std::uint64_t len = 0;
    for (int i = 0; i < 8; ++i) {
      len |= std::uint64_t{static_cast<unsigned char>(buf[end + 1 + i])} << (8 * i);
    }
    fields[name] = buf.substr(end + 9, len);
    at = end + 9 + len + 1;
  }
  return fields;
}

TEST(LogTest, JournalEntriesCarryTheFieldsInScopeOnTheLoggingThread) {
  TestDir dir;
  std::string path = dir.Sub("journal.sock");
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(path.size(), sizeof(addr.sun_path));
  std::memcpy(addr.sun_path, path.data(), path.size());
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_TRUE(InitLogging("info", LogTarget::kJournal, path).ok());
  {
    LogFields component(std::vector<std::pair<std::string, std::string>>{
        {"QP_COMPONENT", "openssl"}, {"bad name", "dropped"}});
    {
      LogFields improvement("QP_IMPROVEMENT", "openssl/3.0.17/a");
      spdlog::error("health check failed:\nexit 1");
    }
    spdlog::info("rolled back");
  }
  spdlog::warn("idle");
  auto first = ReceiveEntry(fd);
  auto second = ReceiveEntry(fd);
  auto third = ReceiveEntry(fd);
  ::close(fd);
  (void)InitLogging("info", LogTarget::kStderr);
  EXPECT_EQ(first["MESSAGE"], "health check failed:\nexit 1");
  EXPECT_EQ(first["PRIORITY"], "3");
  EXPECT_EQ(first["QP_COMPONENT"], "openssl");
  EXPECT_EQ(first["QP_IMPROVEMENT"], "openssl/3.0.17/a");
  EXPECT_EQ(first.count("bad name"), 0u);
  EXPECT_FALSE(first["SYSLOG_IDENTIFIER"].empty());
  EXPECT_EQ(second["MESSAGE"], "rolled back");
  EXPECT_EQ(second["QP_COMPONENT"], "openssl");
  EXPECT_EQ(second.count("QP_IMPROVEMENT"), 0u);
  EXPECT_EQ(third["MESSAGE"], "idle");
  EXPECT_EQ(third["PRIORITY"], "4");
  EXPECT_EQ(third.count("QP_COMPONENT"), 0u);
}

TEST(LogTest, StderrIsJournalOnlyWhenTheStreamMatches) {
  ::setenv("JOURNAL_STREAM", "1:2", 1);
  EXPECT_FALSE(StderrIsJournal());
  ::unsetenv("JOURNAL_STREAM");
  EXPECT_FALSE(StderrIsJournal());
}

}  // namespace
}  // namespace qp
