// Both report store backends pass the same tests.
#include "server/report_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "core/test_dir.h"
#include "server/device_gate.h"
#include "server/test_device.h"
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

// Enrolls each install id (accepted) so that its reports count.
void EnrollAll(ReportStore& store, const std::vector<std::string>& ids) {
  Enrollment e;
  e.id = "e-" + ids.front();
  e.secret_sha256 = std::string(64, '0');
  e.max_uses = 100;
  e.created = 1000;
  e.expires = 9000;
  ASSERT_TRUE(store.AddEnrollment(e).ok());
  for (const auto& id : ids) {
    auto d = store.Enroll(e.id, id, "key-of-" + id, 1000);
    ASSERT_TRUE(d.ok()) << d.error().ToString();
    EXPECT_EQ(d->status, kDeviceAccepted);
  }
}

TEST_P(ReportStoreTest, StoresIdempotentlyAndKeepsEachDevicesLatestState) {
  const std::string id = "openssl/3.0.17-1~deb12u2/a";
  EnrollAll(*store_, {"d1", "d2", "d3"});
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

int FailedDevices(ReportStore& store) {
  auto counts = store.DeviceCounts();
  return counts.ok() ? (*counts)["openssl/3.0.17-1~deb12u2/a"]["failed"] : -1;
}

TEST_P(ReportStoreTest, EnrollmentsAreLimitedAndOnlyAcceptedDevicesCount) {
  Enrollment e;
  e.id = "batch1";
  e.secret_sha256 = std::string(64, 'a');
  e.max_uses = 2;
  e.created = 1000;
  e.expires = 2000;
  ASSERT_TRUE(store_->AddEnrollment(e).ok());
  ASSERT_TRUE(store_->Enroll("batch1", "d1", "k1", 1500).ok());
  ASSERT_TRUE(store_->Enroll("batch1", "d1", "k1", 1500).ok()) << "again: no second use";
  EXPECT_EQ(store_->Enroll("batch1", "d1", "other-key", 1500).error().code(),
            ErrorCode::kFailedPrecondition);
  ASSERT_TRUE(store_->Enroll("batch1", "d2", "k2", 1500).ok());
  EXPECT_EQ(store_->Enroll("batch1", "d3", "k3", 1500).error().code(),
            ErrorCode::kFailedPrecondition);  // used up
  EXPECT_EQ((*store_->FindEnrollment("batch1"))->used, 2);
  e.id = "batch2";
  e.require_accept = true;
  ASSERT_TRUE(store_->AddEnrollment(e).ok());
  EXPECT_EQ(store_->Enroll("batch2", "d4", "k4", 2000).error().code(),
            ErrorCode::kFailedPrecondition);  // expired
  auto pending = store_->Enroll("batch2", "d4", "k4", 1999);
  ASSERT_TRUE(pending.ok());
  EXPECT_EQ(pending->status, kDevicePending);
  EXPECT_EQ(store_->Enroll("nope", "d5", "k5", 1500).error().code(),
            ErrorCode::kFailedPrecondition);

  ASSERT_TRUE(store_
                  ->Store({Event("d1", 1, "failed"), Event("d2", 1, "failed"),
                           Event("d4", 1, "failed"), Event("stranger", 1, "failed")},
                          1600)
                  .ok());
  auto counts = store_->DeviceCounts();
  EXPECT_EQ((*counts)["openssl/3.0.17-1~deb12u2/a"]["failed"], 2) << "pending and unknown: no";
  ASSERT_TRUE(store_->SetDeviceStatus("d4", kDeviceAccepted).ok());
  EXPECT_EQ(FailedDevices(*store_), 3);
  EXPECT_EQ(store_->SetDeviceStatus("zz", kDeviceAccepted).error().code(), ErrorCode::kNotFound);
  auto revoked = store_->RevokeEnrollment("batch1");
  ASSERT_TRUE(revoked.ok());
  EXPECT_EQ(*revoked, 2);
  EXPECT_EQ(FailedDevices(*store_), 1);
  EXPECT_EQ((*store_->FindDevice("d1"))->status, kDeviceRevoked);
  EXPECT_EQ(store_->Enroll("batch1", "d1", "k1", 1500).error().code(),
            ErrorCode::kFailedPrecondition);
  EXPECT_EQ(store_->RevokeEnrollment("nope").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->ListDevices()->size(), 3u);
  EXPECT_EQ(store_->ListEnrollments()->size(), 2u);
}

TEST_P(ReportStoreTest, EachDeviceKeepsABoundedHistoryAndItsLatestState) {
  EnrollAll(*store_, {"busy", "quiet"});
  ASSERT_TRUE(store_->Store({Event("quiet", 1, "protected")}, 1000).ok());
  for (int batch = 0; batch < 12; ++batch) {
    std::vector<StoredEvent> events;
    for (int i = 1; i <= 100; ++i) events.push_back(Event("busy", batch * 100 + i, "downloading"));
    if (batch == 11) events.back().state = "protected";
    ASSERT_TRUE(store_->Store(events, 2000).ok());
  }
  EXPECT_EQ(*store_->CountEvents(), kHistoryPerDevice + 1);
  auto counts = store_->DeviceCounts();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ((*counts)["openssl/3.0.17-1~deb12u2/a"]["protected"], 2);
}

// Many requests at once (on PostgreSQL, written in group commits): each caller is told
// exactly how many of its events were new, a copy sent twice at once is stored once, and a
// request the database refuses fails alone.
TEST_P(ReportStoreTest, ConcurrentReportsAreEachCountedOnceAndABadOneFailsAlone) {
  constexpr int kThreads = 8, kDevices = 40, kEvents = 20;
  std::vector<std::string> ids;
  for (int d = 0; d < kDevices; ++d) ids.push_back("dev" + std::to_string(d));
  EnrollAll(*store_, ids);
  std::atomic<int> stored{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Threads t and t+4 send the same devices' events: every event is sent twice.
      for (int d = t % 4; d < kDevices; d += 4) {
        for (int seq = 1; seq <= kEvents; seq += 5) {
          std::vector<StoredEvent> events;
          for (int s = seq; s < seq + 5; ++s) {
            events.push_back(Event(ids[d], s, s == kEvents ? "protected" : "downloading"));
          }
          auto r = store_->Store(events, 2000);
          if (r.ok()) {
            stored += *r;
          } else {
            ++failed;
          }
        }
      }
      if (t == 0) {
        // A NUL inside text, which no SQL database keeps (the report parser refuses it
        // before it gets here; a store must not let it take others down with it).
        auto bad = store_->Store({Event(ids[0], 999, "failed", "a", std::string("x\0y", 3))}, 2000);
        if (GetParam() == "postgresql") {
          EXPECT_FALSE(bad.ok());
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(stored, kDevices * kEvents);
  auto counted = store_->CountEvents();
  ASSERT_TRUE(counted.ok());
  EXPECT_GE(*counted, kDevices * kEvents);
  auto counts = store_->DeviceCounts();
  ASSERT_TRUE(counts.ok());
  EXPECT_EQ((*counts)["openssl/3.0.17-1~deb12u2/a"]["protected"] +
                (*counts)["openssl/3.0.17-1~deb12u2/a"]["failed"],
            kDevices);
}

INSTANTIATE_TEST_SUITE_P(Backends, ReportStoreTest, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& param_info) { return param_info.param; });

TEST(ReportStoreOpenTest, RejectsUnknownDatabaseUrls) {
  EXPECT_EQ(OpenReportStore("mysql://x").error().code(), ErrorCode::kInvalidArgument);
}

// Two instances' stores on one PostgreSQL database.
class DeviceGateOnPostgresqlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(pg_.url().empty()) << pg_.error();
    auto a = OpenReportStore(pg_.url());
    auto b = OpenReportStore(pg_.url());
    ASSERT_TRUE(a.ok() && b.ok());
    first_ = std::move(a).value();
    second_ = std::move(b).value();
    ASSERT_TRUE(first_->Clear().ok());
  }
  TestPostgres pg_;
  std::unique_ptr<ReportStore> first_, second_;
};

// Two instances on one PostgreSQL database: a request one of them took is a replay to the
// other (on SQLite there is one instance, and its memory is enough).
TEST_F(DeviceGateOnPostgresqlTest, ARequestReplayedToAnotherInstanceIsRefused) {
  DeviceGate a(first_.get(), Clock::Real()), b(second_.get(), Clock::Real());
  auto enrollment = a.CreateEnrollment(1, std::chrono::hours(1), false, "test");
  ASSERT_TRUE(enrollment.ok());
  TestDevice device;
  const std::string enroll_body = device.EnrollBody(enrollment->token);
  ASSERT_TRUE(a.Enroll(device.Request("POST", "/v1/enroll", enroll_body)).ok());
  const std::string body = ReportBody(device.id(), 1, "protected");
  SignedRequest request = device.Request("POST", "/v1/reports", body);
  ASSERT_TRUE(a.Authenticate(request).ok());
  auto replayed = b.Authenticate(request);
  ASSERT_FALSE(replayed.ok());
  EXPECT_EQ(replayed.error().code(), ErrorCode::kVerificationFailed);
  EXPECT_NE(replayed.error().message().find("replayed"), std::string::npos)
      << replayed.error().ToString();
  // A fresh request from the same device passes either instance.
  EXPECT_TRUE(b.Authenticate(device.Request("POST", "/v1/reports", body)).ok());
}

// Claims of the same nonces from many threads and two instances at once: each nonce is
// fresh exactly once.
TEST_F(DeviceGateOnPostgresqlTest, ConcurrentNonceClaimsAreFreshExactlyOnce) {
  constexpr int kThreads = 8, kKeys = 200;
  std::atomic<int> fresh{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ReportStore* store = (t % 2 == 0 ? first_ : second_).get();
      for (int k = 0; k < kKeys; ++k) {
        auto r = store->ClaimNonce("nonce-" + std::to_string((k * 7 + t) % kKeys), 5000, 4000);
        if (!r.ok()) {
          ++failed;
        } else if (*r) {
          ++fresh;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(fresh, kKeys);
}

// Reports stored with their request nonce (one statement): from many threads and two
// instances, the same requests sent again and again: each request's events are stored by
// its first arrival only, a copy is refused as a replay (in the same batch or a later one)
// and stores nothing, and a request whose events were stored by another keeps its nonce.
TEST_F(DeviceGateOnPostgresqlTest, AReportIsStoredWithItsNonceOnceAndAReplayStoresNothing) {
  constexpr int kThreads = 8, kRequests = 60;
  std::atomic<int> stored{0}, accepted{0}, replayed{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      ReportStore* store = (t % 2 == 0 ? first_ : second_).get();
      for (int k = 0; k < kRequests; ++k) {
        int r = (k * 7 + t) % kRequests;  // every thread sends every request, in its order
        std::vector<StoredEvent> events = {
            Event("dev" + std::to_string(r % 5), 2 * r + 1, "downloading"),
            Event("dev" + std::to_string(r % 5), 2 * r + 2, "protected")};
        auto got = store->StoreClaimed(events, 5000,
                                       NonceClaim{"dev/nonce-" + std::to_string(r), 5000, 4000});
        if (got.ok()) {
          ++accepted;
          stored += *got;
        } else if (got.error().code() == ErrorCode::kAlreadyExists) {
          ++replayed;
        } else {
          ++failed;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failed, 0);
  EXPECT_EQ(accepted, kRequests);
  EXPECT_EQ(replayed, (kThreads - 1) * kRequests);
  EXPECT_EQ(stored, 2 * kRequests);
  auto counted = first_->CountEvents();
  ASSERT_TRUE(counted.ok());
  EXPECT_EQ(*counted, 2 * kRequests);
  // Its nonce claimed with it: the same request's nonce is not fresh any more.
  auto again = second_->ClaimNonce("dev/nonce-0", 5001, 4000);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(*again);
}

}  // namespace
}  // namespace qp::server
