#include "server/audit_log.h"

#include <gtest/gtest.h>

#include "core/read_counting_env.h"
#include "core/test_dir.h"

namespace qp::server {
namespace {

TEST(AuditLogTest, AFloodOfRefusalsCostsOneRecordPerWindowAndCountsThem) {
  TestDir dir;
  SimulatedClock clock(std::chrono::system_clock::from_time_t(1800000000));
  AuditLog log(Env::Default(), &clock, dir.Sub("audit.log"));
  for (int i = 0; i < 1000; ++i) log.Refused("rollout", "203.0.113.9", "invalid token");
  clock.Advance(AuditLog::kRefusalWindow);
  log.Refused("rollout", "203.0.113.9", "invalid token");
  log.Refused("rollout", "198.51.100.1", "invalid token");
  auto records = log.Recent();
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0]["details"]["refusals"], 1);
  EXPECT_EQ(records[1]["details"]["refusals"], 1000);
  EXPECT_EQ(records[2]["by"], "198.51.100.1");
}

TEST(AuditLogTest, ARecordReadsNothingAndRotationKeepsEveryRecord) {
  TestDir dir;
  SimulatedClock clock(std::chrono::system_clock::from_time_t(1800000000));
  ReadCountingEnv env(Env::Default());
  AuditLog log(&env, &clock, dir.Sub("audit.log"), /*rotate_bytes=*/4096);
  for (int i = 0; i < 200; ++i) {
    ASSERT_TRUE(log.Record("rollout", "admin", {{"id", "comp/1.0/a"}, {"n", i}}, "ok").ok());
  }
  EXPECT_EQ(env.BytesRead(dir.Sub("audit.log")), 0u) << "appending never reads the log back";
  // Every record is in one of the files, in order.
  int seen = 0;
  auto names = Env::Default()->ListDir(dir.path());
  ASSERT_TRUE(names.ok());
  EXPECT_GT(names->size(), 2u) << "rotated";
  for (const auto& name : *names) {
    std::string text = ReadTestFile(dir.Sub(name));
    for (std::size_t pos = 0; (pos = text.find("\"n\":", pos)) != std::string::npos; ++pos) ++seen;
    EXPECT_EQ(Env::Default()->Stat(dir.Sub(name))->mode & 0777, 0600u) << name;
  }
  EXPECT_EQ(seen, 200);
  auto recent = log.Recent();
  ASSERT_FALSE(recent.empty());
  EXPECT_EQ(recent.back()["details"]["n"], 199);
}

}  // namespace
}  // namespace qp::server
