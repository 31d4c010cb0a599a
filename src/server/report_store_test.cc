// Both report store backends pass the same tests.
#include "server/report_store.h"

#include <gtest/gtest.h>

#include "core/test_dir.h"
#include "server/test_postgres.h"

namespace qp::server {
namespace {

StoredEvent Event(const std::string& install, std::int64_t seq, const std::string& state,
                  const std::string& label = "a", const std::string& error = "") {
  StoredEvent e;
  e.install_id = install;
  e.seq = seq;
  e.time = 1000 + seq;
  e.component = "openssl";
  e.platform = "linux-x86_64";
  e.base = "3.0.17-1~deb12u2";
  e.improvement = label;
  e.state = state;
  e.error = error;
  e.restart_needed = "[]";
  e.agent_version = "0.1.0";
  return e;
}

class ReportStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (GetParam() == "sqlite") {
      auto s = OpenReportStore("sqlite:" + dir_.Sub("reports.db"));
      ASSERT_TRUE(s.ok()) << s.error().ToString();
      store_ = std::move(s).value();
    } else {
      pg_ = std::make_unique<TestPostgres>();
      ASSERT_FALSE(pg_->url().empty()) << pg_->error();
      auto s = OpenReportStore(pg_->url());
      ASSERT_TRUE(s.ok()) << s.error().ToString();
      store_ = std::move(s).value();
      ASSERT_TRUE(store_->Clear().ok());
    }
  }
  TestDir dir_;
  std::unique_ptr<TestPostgres> pg_;
  std::unique_ptr<ReportStore> store_;
};

TEST_P(ReportStoreTest, StoresIdempotentlyAndKeepsEachDevicesLatestState) {
  const std::string id = "openssl/3.0.17-1~deb12u2/a";
  auto n = store_->Store({Event("d1", 1, "downloading"), Event("d1", 2, "protected"),
                          Event("d2", 1, "failed", "a", "health check failed")},
                         5000);
  ASSERT_TRUE(n.ok()) << n.error().ToString();
  EXPECT_EQ(*n, 3);
  // The same events again (a retry after a lost answer) store nothing new.
  n = store_->Store(
      {Event("d1", 2, "protected"), Event("d2", 1, "failed", "a", "health check failed")}, 5001);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0);
  // An older event arriving late does not overwrite a newer state.
  ASSERT_TRUE(
      store_->Store({Event("d3", 5, "protected"), Event("d3", 4, "downloading")}, 5002).ok());
  auto counts = store_->DeviceCounts();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ((*counts)[id]["protected"], 2);
  EXPECT_EQ((*counts)[id]["failed"], 1);
  EXPECT_EQ((*counts)[id].count("downloading"), 0u);
  auto reasons = store_->FailureReasons(id, 5);
  ASSERT_TRUE(reasons.ok());
  ASSERT_EQ(reasons->size(), 1u);
  EXPECT_EQ((*reasons)[0].first, "health check failed");
  auto series = store_->ProtectedSeries(id);
  ASSERT_TRUE(series.ok());
  ASSERT_EQ(series->size(), 2u);
  EXPECT_EQ((*series)[0], std::make_pair(std::int64_t{1002}, 1));
  EXPECT_EQ((*series)[1], std::make_pair(std::int64_t{1005}, 2));
  EXPECT_EQ(*store_->CountEvents(), 5);
}

INSTANTIATE_TEST_SUITE_P(Backends, ReportStoreTest, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& param_info) { return param_info.param; });

TEST(ReportStoreOpenTest, RejectsUnknownDatabaseUrls) {
  EXPECT_EQ(OpenReportStore("mysql://x").error().code(), ErrorCode::kInvalidArgument);
}

}  // namespace
}  // namespace qp::server
