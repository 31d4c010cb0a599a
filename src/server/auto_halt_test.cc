// The auto-halt rule under a burst of failure reports: one look at the fleet's counts at a
// time, the reports that arrive meanwhile taken together in the next round.
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "core/durable_file.h"
#include "core/test_dir.h"
#include "online/online_repository.h"
#include "publish/test_repository.h"
#include "server/fleet_service.h"
#include "server/test_config.h"
#include "server/test_device.h"

namespace qp::server {
namespace {

using Json = nlohmann::json;

// A database whose fleet-wide count (DeviceCounts) can be held at a gate, counting its
// calls; everything else goes straight to the SQLite store underneath.
class GatedCountsStore final : public ReportStore {
 public:
  explicit GatedCountsStore(std::unique_ptr<ReportStore> inner) : inner_(std::move(inner)) {}

  void Close() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = false;
  }
  void Open() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      open_ = true;
    }
    cv_.notify_all();
  }
  // Waits until `n` calls have begun (at most 10 s).
  bool WaitForCalls(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(10), [&] { return calls_ >= n; });
  }
  int calls() {
    std::lock_guard<std::mutex> lock(mu_);
    return calls_;
  }

  Result<std::map<std::string, std::map<std::string, int>>> DeviceCounts() override {
    {
      std::unique_lock<std::mutex> lock(mu_);
      ++calls_;
      cv_.notify_all();
      cv_.wait(lock, [&] { return open_; });
    }
    return inner_->DeviceCounts();
  }

  Status AddEnrollment(const Enrollment& e) override { return inner_->AddEnrollment(e); }
  Result<std::optional<Enrollment>> FindEnrollment(const std::string& id) override {
    return inner_->FindEnrollment(id);
  }
  Result<std::vector<Enrollment>> ListEnrollments() override { return inner_->ListEnrollments(); }
  Result<Device> Enroll(const std::string& enrollment_id, const std::string& install_id,
                        const std::string& public_key, std::int64_t now) override {
    return inner_->Enroll(enrollment_id, install_id, public_key, now);
  }
  Result<std::optional<Device>> FindDevice(const std::string& install_id) override {
    return inner_->FindDevice(install_id);
  }
  Result<std::vector<Device>> ListDevices() override { return inner_->ListDevices(); }
  Status SetDeviceStatus(const std::string& install_id, const std::string& status) override {
    return inner_->SetDeviceStatus(install_id, status);
  }
  Result<int> RevokeEnrollment(const std::string& id) override {
    return inner_->RevokeEnrollment(id);
  }
  Result<int> Store(const std::vector<StoredEvent>& events, std::int64_t received) override {
    return inner_->Store(events, received);
  }
  Result<std::vector<std::pair<std::string, int>>> FailureReasons(const std::string& id,
                                                                  int limit) override {
    return inner_->FailureReasons(id, limit);
  }
  Result<std::vector<std::pair<std::int64_t, int>>> ProtectedSeries(
      const std::string& id) override {
    return inner_->ProtectedSeries(id);
  }
  Result<std::int64_t> CountEvents() override { return inner_->CountEvents(); }
  Status Clear() override { return inner_->Clear(); }

 private:
  std::unique_ptr<ReportStore> inner_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = true;
  int calls_ = 0;
};

TEST(AutoHaltTest, FailureReportsThatArriveWhileTheFleetIsCountedShareTheNextCount) {
  TestDir dir;
  publish::RepoPaths paths{dir.Sub("repo"), dir.Sub("keys")};
  ASSERT_TRUE(publish::MakeTestRepository(dir, paths).ok());
  auto configured = TestServerConfig(dir, paths);
  ASSERT_TRUE(configured.ok()) << configured.error().ToString();
  ServerConfig config = *configured;
  config.auto_halt_min_reports = 4;
  config.auto_halt_max_failure_percent = 25;
  auto sqlite = OpenReportStore("sqlite:" + dir.Sub("reports.db"));
  ASSERT_TRUE(sqlite.ok()) << sqlite.error().ToString();
  auto gated = std::make_unique<GatedCountsStore>(std::move(sqlite).value());
  GatedCountsStore* store = gated.get();
  FleetService service(config, std::move(gated), Env::Default(), Clock::Real());
  // As the HTTP layer's worker pool would: each deferred check on a thread of its own.
  std::mutex threads_mu;
  std::vector<std::thread> threads;
  service.defer = [&](std::function<void()> work) {
    std::lock_guard<std::mutex> lock(threads_mu);
    threads.emplace_back(std::move(work));
  };
  // Opens the gate and waits for every deferred check (also when an assertion ends the
  // test early).
  auto finish = [&] {
    store->Open();
    for (;;) {
      std::thread t;
      {
        std::lock_guard<std::mutex> lock(threads_mu);
        if (threads.empty()) return;
        t = std::move(threads.back());
        threads.pop_back();
      }
      t.join();
    }
  };
  struct Finally {
    std::function<void()> run;
    ~Finally() { run(); }
  } finally{finish};

  ApiResponse made =
      service.AdminDevices("/v1/admin/enrollments", true, "Bearer 0123456789abcdef0123456789abcdef",
                           R"({"uses": 10, "days": 1})", "test");
  ASSERT_EQ(made.status, 200) << made.body;
  const std::string token = Json::parse(made.body)["token"];
  constexpr int kDevices = 6;
  std::vector<std::unique_ptr<TestDevice>> devices;
  std::vector<std::string> bodies(kDevices);
  for (int i = 0; i < kDevices; ++i) {
    devices.push_back(std::make_unique<TestDevice>());
    const std::string enroll = devices[i]->EnrollBody(token);
    ASSERT_EQ(service.Enroll(devices[i]->Request("POST", "/v1/enroll", enroll), "test").status,
              200);
    bodies[i] = ReportBody(devices[i]->id(), 1, "failed", "a", "health check failed");
  }

  std::mutex replies_mu;
  std::condition_variable replied;
  std::vector<int> statuses;
  auto post = [&](int i) {
    service.PostReports(devices[i]->Request("POST", "/v1/reports", bodies[i]), [&](ApiResponse r) {
      std::lock_guard<std::mutex> lock(replies_mu);
      statuses.push_back(r.status);
      replied.notify_all();
    });
  };
  // The first failure report starts a count of the fleet, held at the gate.
  store->Close();
  post(0);
  ASSERT_TRUE(store->WaitForCalls(1));
  // Five more arrive while it is held: each is stored and answered without a count of its
  // own.
  for (int i = 1; i < kDevices; ++i) post(i);
  {
    std::unique_lock<std::mutex> lock(replies_mu);
    ASSERT_TRUE(replied.wait_for(lock, std::chrono::seconds(10),
                                 [&] { return statuses.size() == kDevices - 1; }))
        << statuses.size() << " answered";
  }
  EXPECT_EQ(store->calls(), 1);
  finish();
  // The held count, then one more for the five that arrived meanwhile; every report
  // answered, and the rollout halted (6 of 6 devices failed).
  EXPECT_EQ(store->calls(), 2);
  EXPECT_EQ(statuses.size(), static_cast<std::size_t>(kDevices));
  for (int s : statuses) EXPECT_EQ(s, 200);
  auto rollout = online::ReadRollout(Env::Default(), Clock::Real(), paths);
  ASSERT_TRUE(rollout.ok()) << rollout.error().ToString();
  const contract::RolloutEntry* entry = rollout->Find("comp/1.0/a");
  ASSERT_NE(entry, nullptr);
  EXPECT_TRUE(entry->halted);
  EXPECT_NE(service.Metrics(0).find("qp_auto_halt_rounds_total 2"), std::string::npos);
}

}  // namespace
}  // namespace qp::server
