// The simulator's invariants, not its headline numbers: devices are conserved, nobody is
// protected before being online, a halted rollout starts nothing, a seed fixes the output
// (whatever the thread count), and the closed-form case matches its analytic distribution.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/env.h"
#include "core/test_dir.h"
#include "fleetsim/calibration.h"
#include "fleetsim/model.h"
#include "fleetsim/report.h"
#include "fleetsim/simulator.h"

namespace qp::fleetsim {
namespace {

Calibration TestCalibration() {
  Calibration c;
  c.Set("server.fanout_s_per_watcher", {0.17 / 10000, "test"});
  c.Set("server.watcher_kb", {3.18, "test"});
  c.Set("server.reports_per_s.postgresql", {2532, "test"});
  c.Set("server.requests_per_s", {117085, "test"});
  c.Set("store.install_s:libssl3-3.0.17-to-3.0.20", {0.26, "test"});
  c.Set("store.install_cpu_s:libssl3-3.0.17-to-3.0.20", {0.2, "test"});
  c.Set("agent.loopback_install_cpu_s", {0.126, "test"});
  c.Set("server.loopback_install_cpu_s", {0.002, "test"});
  c.Set("delta.tree_bytes:libssl3 3.0.20 -> 3.0.22", {72608, "test"});
  c.Set("delta.tree_bytes:libssl3 3.0.17 -> 3.0.22", {143342, "test"});
  c.Set("delta.full_deb_bytes:libssl3 3.0.17 -> 3.0.22", {2039888, "test"});
  return c;
}

Model SmallModel(std::uint64_t devices) {
  auto m = DefaultModel(TestCalibration());
  EXPECT_TRUE(m.ok());
  m->population.devices = devices;
  m->horizon_h = 72;
  return *m;
}

const AgentModel& Agent(const Model& m, AgentKind kind) {
  for (const AgentModel& a : m.agents) {
    if (a.kind == kind) return a;
  }
  ADD_FAILURE() << "no agent of that kind";
  return m.agents[0];
}

TEST(FleetsimTest, EveryAgentConservesDevices) {
  Model m = SmallModel(20000);
  m.failure = {0.05, 0.5};
  Simulator sim(m);
  for (const AgentModel& a : m.agents) {
    RunResult r = sim.Run(a);
    std::uint64_t sum = 0;
    for (std::uint64_t n : r.phases) sum += n;
    EXPECT_EQ(sum, m.population.devices) << a.name;
    EXPECT_EQ(r.phases[static_cast<int>(Phase::kOptedOut)], 1000u) << a.name;  // 5% of 20000
    EXPECT_EQ(r.eligible + r.phases[static_cast<int>(Phase::kOptedOut)], m.population.devices);
    EXPECT_LE(r.reachable, r.eligible);
    EXPECT_LE(r.protected_count, r.reachable);
    EXPECT_EQ(r.protected_count, r.phases[static_cast<int>(Phase::kProtected)]) << a.name;
    EXPECT_GT(r.protected_count, r.reachable * 8 / 10) << a.name;
    // Only the failing class rolls back.
    for (std::uint64_t id = 0; id < m.population.devices; ++id) {
      if (sim.devices()[id].phase == Phase::kRolledBack) {
        ASSERT_TRUE(sim.fleet().TraitsOf(id).failing) << a.name << " device " << id;
      }
    }
  }
}

TEST(FleetsimTest, NoDeviceIsProtectedBeforeItIsOnlineAfterPublication) {
  Model m = SmallModel(20000);
  Simulator sim(m);
  for (const AgentModel& a : m.agents) {
    RunResult r = sim.Run(a);
    std::uint64_t checked = 0;
    for (std::uint64_t id = 0; id < m.population.devices; ++id) {
      const DeviceState& d = sim.devices()[id];
      if (d.phase != Phase::kProtected) continue;
      const Traits t = sim.fleet().TraitsOf(id);
      const std::int64_t online = sim.fleet().NextOnline(id, t, 0);
      ASSERT_NE(online, kNever) << a.name << " device " << id;
      ASSERT_GE(static_cast<std::int64_t>(d.protected_ms), online) << a.name << " device " << id;
      // And it is online when it finishes (installs run in a session).
      ASSERT_TRUE(sim.fleet().OnlineAt(id, t, d.protected_ms) || a.kind == AgentKind::kAptTimers)
          << a.name << " device " << id;
      ++checked;
    }
    EXPECT_EQ(checked, r.protected_count);
  }
}

TEST(FleetsimTest, AnOperatorsHaltStartsNoNewDownload) {
  Model m = SmallModel(20000);
  m.rollout.stages = {{0, 100}};
  m.rollout.operator_halt_at_s = 1800;
  const AgentModel& poll = Agent(m, AgentKind::kPoll);
  Simulator sim(m);
  RunResult r = sim.Run(poll);
  EXPECT_EQ(r.halted_at_s, 1800);
  EXPECT_EQ(r.downloads_started_while_halted, 0u);
  EXPECT_GT(r.protected_count, 0u);
  // Downloads and installs take seconds: nothing is protected long after the halt.
  for (const DeviceState& d : sim.devices()) {
    if (d.phase == Phase::kProtected) {
      ASSERT_LE(d.protected_ms, 1800u * 1000 + 600 * 1000);
    }
  }
  // Without the halt, many more devices are protected.
  m.rollout.operator_halt_at_s = -1;
  Simulator free_run(m);
  EXPECT_GT(free_run.Run(poll).protected_count, r.protected_count * 3 / 2);
}

TEST(FleetsimTest, TheAutoHaltStopsABadRolloutAndTheResumeHoldsTheFailingClassBack) {
  Model m = SmallModel(20000);
  m.failure = {0.2, 1.0};  // a fifth of the fleet rolls back: far over 5%
  m.rollout.stages = {{0, 10}, {3600, 100}};
  m.rollout.resume_after_halt_s = 7200;
  const AgentModel& watch = Agent(m, AgentKind::kWatch);
  Simulator sim(m);
  RunResult r = sim.Run(watch);
  ASSERT_GE(r.halted_at_s, 0);
  EXPECT_LT(r.halted_at_s, 3600);  // within the 10% stage
  EXPECT_NE(r.halt_reason.find("auto-halt"), std::string::npos);
  EXPECT_EQ(r.downloads_started_while_halted, 0u);
  EXPECT_GE(r.resumed_at_s, r.halted_at_s + 7200);
  // After the resume, no device of the failing class starts: the rolled-back devices are
  // those that installed before the halt (at most the first stage's share, and few).
  std::uint64_t rolled_back = r.phases[static_cast<int>(Phase::kRolledBack)];
  EXPECT_GT(rolled_back, 0u);
  EXPECT_LT(rolled_back, 20000u / 10);
  EXPECT_GT(r.protected_count, r.reachable / 2);
}

TEST(FleetsimTest, AFixedSeedGivesIdenticalOutputWhateverTheThreads) {
  Model m = SmallModel(30000);
  m.failure = {0.05, 0.5};
  m.rollout.stages = {{0, 10}, {1800, 50}, {7200, 100}};
  for (const AgentModel& a : {Agent(m, AgentKind::kWatch), Agent(m, AgentKind::kAptTimers)}) {
    m.threads = 2;
    Simulator two(m);
    RunResult r2 = two.Run(a);
    std::vector<DeviceState> states2 = two.devices();
    m.threads = 1;
    Simulator one(m);
    RunResult r1 = one.Run(a);
    r1.wall_s = r2.wall_s = 0;
    EXPECT_EQ(FormatTsv({r1}), FormatTsv({r2})) << a.name;
    EXPECT_EQ(FormatCurves({r1}), FormatCurves({r2})) << a.name;
    ASSERT_EQ(states2.size(), one.devices().size());
    EXPECT_EQ(
        0, std::memcmp(states2.data(), one.devices().data(), states2.size() * sizeof(DeviceState)))
        << a.name;
  }
  // Another seed gives another fleet.
  m.threads = 2;
  Simulator a(m);
  RunResult ra = a.Run(m.agents[0]);
  m.seed = 2;
  Simulator b(m);
  RunResult rb = b.Run(m.agents[0]);
  EXPECT_NE(ra.t50_s, rb.t50_s);
}

// A saturated edge: every byte is counted once, the egress never exceeds the capacity, and
// the fleet cannot finish sooner than its bytes take at that capacity.
TEST(FleetsimTest, ASaturatedEdgeServesAtItsCapacityAndCountsEveryByteOnce) {
  Model m = SmallModel(20000);
  m.population.classes = {{"always", 1.0, OnlineKind::kAlways}};
  m.network.download_failure_probability = 0;
  m.edge.capacity_gbps = 1;
  m.horizon_h = 6;
  AgentModel full{"whole packages, 10 s poll", AgentKind::kPoll, 10, 0, 30, true};
  Simulator sim(m);
  RunResult r = sim.Run(full);
  const double payload = m.population.package_bytes.value;
  ASSERT_EQ(r.protected_count, r.eligible);
  EXPECT_EQ(r.downloads_started, r.eligible);
  EXPECT_NEAR(r.total_egress_bytes, static_cast<double>(r.downloads_started) * payload, 1.0);
  EXPECT_LE(r.peak_egress_gbps, 1.0 + 1e-9);
  EXPECT_GT(r.peak_egress_gbps, 0.99);
  // At least the bytes at capacity; at most that, plus the slowest device's download alone
  // (when the edge is no longer the bottleneck), plus the checks' spread and an install.
  const double bound_s = r.total_egress_bytes * 8 / 1e9;
  double slowest_s = 0;
  for (std::uint64_t id = 0; id < m.population.devices; ++id) {
    slowest_s = std::max(slowest_s, payload * 8 / sim.fleet().Bandwidth(id));
  }
  EXPECT_GE(r.last_protected_s, bound_s);
  EXPECT_LE(r.last_protected_s, bound_s + slowest_s + 10 + 2) << "slowest alone " << slowest_s;
}

// Everyone online, polling every I + U(0, J) since long before: the time to the first
// check after publication is the renewal process's residual, whose distribution is
// F(t) = (1 / E[L]) * integral from 0 to t of P(L > u) du, with E[L] = I + J / 2.
TEST(FleetsimTest, ClosedFormPollingMatchesTheAnalyticDistribution) {
  Model m = SmallModel(100000);
  m.population.classes = {{"always", 1.0, OnlineKind::kAlways}};
  m.population.auto_install_share = 1;
  m.network = {1e6, 0, 0};  // a terabit each, never failing: downloads take no time
  for (Base& b : m.population.bases) b.patch_bytes.value = 1;
  m.population.package_bytes.value = 1;
  m.costs.install_s.value = 0;
  m.horizon_h = 2;
  const double interval = 600, jitter = 300;
  AgentModel poll{"poll", AgentKind::kPoll, interval, jitter, 30};
  Simulator sim(m);
  RunResult r = sim.Run(poll);
  ASSERT_EQ(r.protected_count, m.population.devices);

  std::vector<double> t;
  for (const DeviceState& d : sim.devices()) t.push_back(d.protected_ms / 1000.0);
  std::sort(t.begin(), t.end());
  const double mean = interval + jitter / 2;
  auto F = [&](double x) {
    if (x <= 0) return 0.0;
    if (x <= interval) return x / mean;
    if (x >= interval + jitter) return 1.0;
    const double hi = interval + jitter;
    return (interval + (hi * x - x * x / 2 - (hi * interval - interval * interval / 2)) / jitter) /
           mean;
  };
  double ks = 0;
  const double n = static_cast<double>(t.size());
  for (std::size_t i = 0; i < t.size(); ++i) {
    // Protected times are whole milliseconds: compare with F at the ms's end.
    const double f = F(t[i] + 0.001);
    ks = std::max({ks, std::fabs(f - static_cast<double>(i + 1) / n),
                   std::fabs(f - static_cast<double>(i) / n)});
  }
  // The Kolmogorov-Smirnov 1% critical value for n = 100,000 is 1.63 / sqrt(n) = 0.0052.
  EXPECT_LT(ks, 0.0052) << "KS distance " << ks;
  EXPECT_NEAR(t.back(), interval + jitter, 1.0);
}

TEST(FleetsimTest, CalibrationReadsTheNewestLineOfEachFigureWithItsSource) {
  Calibration c;
  c.Parse("bench/server_bench_results.txt",
          "timestamp.json requests/s at 64 connections: quietpatch-server 100.5, nginx 99\n"
          "reports on postgresql: 10000 events from 200 devices in 3.9 s = 2532 events/s stored\n"
          "timestamp.json requests/s at 64 connections: quietpatch-server 117085.19, nginx 1\n"
          "10000 idle watchers: server RSS 43.7 MB (12.7 MB before, 3.18 KB per watcher)\n"
          "publish to all 10000 watchers answered: 0.17 s after the new timestamp\n"
          "reports on sqlite, 1 instance, 10 events a request: 50000 events = 10798 events/s "
          "stored\n"
          "reports on sqlite, 1 instance, 50 events a request: 50000 events = 25243 events/s "
          "stored\n"
          "reports on postgresql, 1 instance(s), 10 events a request (goal: 20000/s): 50000 "
          "events = 9876 events/s stored\n"
          "reports on postgresql, 3 instance(s), 10 events a request (goal: 20000/s): 50000 "
          "events = 13451 events/s stored\n");
  c.Parse("bench/store_bench_results.txt",
          "== libssl3-3.0.17-to-3.0.20 (107554 byte patch)\n"
          "install (stage, verify, swap, keep rollback copy, fsync): 0.22 s (0.13 s CPU), 6 MB\n");
  c.Parse("bench/delta_bench_results.txt",
          "libssl3 3.0.17 -> 3.0.22               143342     4.51     0.18         359444      "
          "2039888    0.399\n");
  auto req = c.Get("server.requests_per_s");
  ASSERT_TRUE(req.ok());
  EXPECT_DOUBLE_EQ(req->value, 117085.19);
  EXPECT_EQ(req->source.rfind("bench/server_bench_results.txt:3: ", 0), 0u) << req->source;
  EXPECT_DOUBLE_EQ(c.Get("server.reports_per_s.postgresql")->value, 9876) << "one instance only";
  EXPECT_EQ(c.Get("server.reports_per_s.postgresql")
                ->source.rfind("bench/server_bench_results.txt:8: ", 0),
            0u);
  EXPECT_DOUBLE_EQ(c.Get("server.reports_per_s.sqlite")->value, 10798) << "10 a request";
  EXPECT_DOUBLE_EQ(c.Get("server.watcher_kb")->value, 3.18);
  EXPECT_DOUBLE_EQ(c.Get("server.fanout_s_per_watcher")->value, 0.17 / 10000);
  EXPECT_DOUBLE_EQ(c.Get("store.install_s:libssl3-3.0.17-to-3.0.20")->value, 0.22);
  EXPECT_DOUBLE_EQ(c.Get("store.install_cpu_s:libssl3-3.0.17-to-3.0.20")->value, 0.13);
  EXPECT_DOUBLE_EQ(c.Get("delta.tree_bytes:libssl3 3.0.17 -> 3.0.22")->value, 143342);
  EXPECT_DOUBLE_EQ(c.Get("delta.full_deb_bytes:libssl3 3.0.17 -> 3.0.22")->value, 2039888);
  auto missing = c.Get("agent.loopback_install_cpu_s");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message().find("agent.loopback_install_cpu_s"), std::string::npos);
  // The default model refuses to run on a missing figure.
  EXPECT_FALSE(DefaultModel(c).ok());
}

TEST(FleetsimTest, AScenarioFileOverridesTheDefaultsAndNamesWhatIsWrong) {
  TestDir dir;
  const std::string path = dir.Sub("demo.toml");
  WriteTestFile(path, R"toml(
name = "demo"
horizon_hours = 1
step_ms = 10
agents = ["quietpatch (polling only)"]
[population]
devices = 20
started_before_publication_s = 8.5
package_bytes = "delta.full_deb_bytes:libssl3 3.0.17 -> 3.0.22"
[[population.classes]]
name = "loopback"
kind = "always"
share = 1
[agent."quietpatch (polling only)"]
interval_s = 30
jitter_s = 5
[costs]
install_s = 0.5
[host]
cores = 2
)toml");
  Calibration cal = TestCalibration();
  auto m = DefaultModel(cal);
  ASSERT_TRUE(m.ok());
  Status s = LoadScenario(Env::Default(), path, cal, &*m);
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_EQ(m->name, "demo");
  EXPECT_EQ(m->population.devices, 20u);
  EXPECT_EQ(m->step_ms, 10);
  ASSERT_EQ(m->agents.size(), 1u);
  EXPECT_EQ(m->agents[0].interval_s, 30);
  EXPECT_EQ(m->agents[0].jitter_s, 5);
  EXPECT_EQ(m->costs.install_s.value, 0.5);
  EXPECT_EQ(m->costs.install_s.source, "scenario demo.toml");
  EXPECT_EQ(m->population.package_bytes.value, 2039888);
  EXPECT_EQ(m->host.cores, 2);

  WriteTestFile(path, "[population]\ndevices = -3\n");
  s = LoadScenario(Env::Default(), path, cal, &*m);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("demo.toml: devices"), std::string::npos)
      << s.error().message();
  WriteTestFile(path, "[[population.classes]]\nkind = \"always\"\nshare = 0.5\n");
  s = LoadScenario(Env::Default(), path, cal, &*m);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("add up to 1"), std::string::npos) << s.error().message();
}

}  // namespace
}  // namespace qp::fleetsim
