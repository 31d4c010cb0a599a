#include "server/audit_log.h"

#include <gtest/gtest.h>

#include "core/read_counting_env.h"
#include "core/test_dir.h"
#include "server/test_postgres.h"

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
  AuditLog log(&env, &clock, dir.Sub("audit.log"), /*table=*/nullptr,
               /*rotate_bytes=*/4096);
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

TEST(AuditLogTest, OnPostgresqlEveryInstanceWritesAndReadsOneTrailInTheDatabase) {
  TestPostgres pg;
  ASSERT_FALSE(pg.url().empty()) << pg.error();
  auto first = OpenReportStore(pg.url());
  auto second = OpenReportStore(pg.url());
  ASSERT_TRUE(first.ok() && second.ok());
  ASSERT_NE((*first)->audit_table(), nullptr);
  TestDir dir;
  SimulatedClock clock(std::chrono::system_clock::from_time_t(1800000000));
  // Two instances, each with its own disk: neither writes a file.
  AuditLog a(Env::Default(), &clock, dir.Sub("a.log"), (*first)->audit_table());
  AuditLog b(Env::Default(), &clock, dir.Sub("b.log"), (*second)->audit_table());
  ASSERT_TRUE(a.Record("rollout", "10.0.0.1", {{"id", "comp/1.0/a"}, {"percent", 50}}, "ok").ok());
  ASSERT_TRUE(b.Record("revoke", "10.0.0.2", {{"id", "comp/1.0/a"}}, "ok").ok());
  for (int i = 0; i < 100; ++i) a.Refused("rollout", "203.0.113.9", "invalid token");
  auto seen_by_a = a.Recent();
  auto seen_by_b = b.Recent();
  EXPECT_EQ(seen_by_a, seen_by_b);
  ASSERT_EQ(seen_by_b.size(), 3u);
  EXPECT_EQ(seen_by_b[0]["details"]["percent"], 50);
  EXPECT_EQ(seen_by_b[1]["action"], "revoke");
  EXPECT_EQ(seen_by_b[2]["details"]["refusals"], 1);
  EXPECT_FALSE(Env::Default()->Stat(dir.Sub("a.log")).ok());
  EXPECT_FALSE(Env::Default()->Stat(dir.Sub("b.log")).ok());
}

}  // namespace
}  // namespace qp::server
