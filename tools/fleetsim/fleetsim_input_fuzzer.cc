// Fuzzes what the simulator reads: benchmark result text (calibration) and scenario TOML.
// Neither may crash, hang or allocate without bound, whatever the bytes; a scenario that
// parses must validate or be refused with an error.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fleetsim/calibration.h"
#include "fleetsim/model.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  qp::fleetsim::Calibration cal;
  for (const char* name : {"bench/agent_bench_results.txt", "bench/server_bench_results.txt",
                           "bench/store_bench_results.txt", "bench/delta_bench_results.txt"}) {
    cal.Parse(name, text);
  }
  // A calibration with every figure, so the scenario's references resolve or fail cleanly.
  for (const char* key :
       {"server.fanout_s_per_watcher", "server.watcher_kb", "server.reports_per_s.postgresql",
        "server.requests_per_s", "store.install_s:libssl3-3.0.17-to-3.0.20",
        "store.install_cpu_s:libssl3-3.0.17-to-3.0.20", "agent.loopback_install_cpu_s",
        "server.loopback_install_cpu_s", "delta.tree_bytes:libssl3 3.0.20 -> 3.0.22",
        "delta.tree_bytes:libssl3 3.0.17 -> 3.0.22",
        "delta.full_deb_bytes:libssl3 3.0.17 -> 3.0.22"}) {
    cal.Set(key, {1, "fuzz"});
  }
  auto model = qp::fleetsim::DefaultModel(cal);
  if (!model.ok()) __builtin_trap();
  (void)qp::fleetsim::ParseScenario(text, "fuzz.toml", cal, &*model);
  return 0;
}
