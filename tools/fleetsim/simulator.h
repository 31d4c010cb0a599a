// The discrete-event engine. Every device is 16 bytes of state and one pending event in a
// calendar of time buckets (one calendar per worker thread, devices split by id). Within a
// bucket, events run in time order; between buckets (one step, 1 s by default) the workers
// meet and the couplings are settled from integer sums, so the result does not depend on
// the number of threads:
//   - the edge's egress: downloads share it in proportion to their own bandwidth (a
//     virtual clock runs at min(1, capacity / demand));
//   - a loopback host's cores, when the model has one (the demo's validation);
//   - the rollout: stage percentages, the auto-halt rule over the reports, an operator's
//     halt and resume; a stage change or a resume wakes every online watcher.
// Device draws come from population.h's hash, keyed by the event's time, so a fixed seed
// gives identical output.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "fleetsim/model.h"
#include "fleetsim/population.h"

namespace qp::fleetsim {

// Where a device ends up (and is, while the simulation runs).
enum class Phase : std::uint8_t {
  kWaiting,      // its next event is a check (or a timer, or a session start)
  kDownloading,  // its next event is the end of its download (or of its session)
  kInstalling,   // its next event is the end of its install and health check
  kProtected,
  kRolledBack,  // its health check failed; the old files are back
  kOptedOut,    // "Automatically Install" is off
  kCount,
};

struct DeviceState {
  std::uint32_t next_ms = 0;       // its pending event; kNoEvent when none
  std::uint32_t protected_ms = 0;  // when protected (kNoEvent when not)
  std::uint32_t aux = 0;           // download or install target on a virtual clock, or bytes left
  Phase phase = Phase::kWaiting;
  std::uint8_t flags = 0;
  std::uint8_t failures = 0;  // failed downloads in a row (quietpatchd's backoff)
  std::uint8_t attempts = 0;  // download attempts
};
static_assert(sizeof(DeviceState) == 16);
inline constexpr std::uint32_t kNoEvent = 0xFFFFFFFF;

// Device-count invariants and the figures of one run.
struct RunResult {
  std::string agent;
  std::uint64_t devices = 0;
  std::array<std::uint64_t, static_cast<int>(Phase::kCount)> phases{};
  std::uint64_t eligible = 0;         // Automatically Install on, and not held back
  std::uint64_t reachable = 0;        // eligible and online at some point before the horizon
  std::uint64_t protected_count = 0;  // of reachable
  std::uint64_t reachable_1h = 0;     // eligible and online at some point in the first hour
  std::uint64_t protected_1h = 0;     // of those, protected within the first hour
  // Seconds from publication to this share of `reachable` protected; < 0 when not reached.
  double t50_s = -1, t90_s = -1, t95_s = -1, t99_s = -1, t_last_s = -1;
  double last_protected_s = -1;  // the last device that was protected, whatever the share
  double peak_egress_gbps = 0;
  double total_egress_bytes = 0;
  double egress_cost = 0;
  double peak_watchers = 0;
  double peak_reports_per_s = 0;         // in one second
  double peak_reports_per_s_minute = 0;  // averaged over a minute: devices queue reports
                                         // and retry, so instances are sized on this
  double peak_requests_per_s = 0;
  // For the peak watchers, the peak requests per second and the minute's peak of reports.
  int instances_needed = 0;
  std::uint64_t events = 0;
  std::uint64_t downloads_started = 0;
  std::uint64_t downloads_started_while_halted = 0;
  double halted_at_s = -1, resumed_at_s = -1;
  std::string halt_reason;
  double online_sample_stride = 1;  // the online series counted every stride-th device
  // (seconds from publication, protected share of `reachable`), log-spaced.
  std::vector<std::pair<double, double>> curve;
  double wall_s = 0;
};

class Simulator {
 public:
  explicit Simulator(const Model& model);

  // Simulates the whole fleet with `agent` from publication to the horizon.
  RunResult Run(const AgentModel& agent);

  // The devices' final states (the last run), for invariant tests.
  const std::vector<DeviceState>& devices() const { return devices_; }
  const Fleet& fleet() const { return fleet_; }

 private:
  const Model& model_;
  Fleet fleet_;
  std::vector<DeviceState> devices_;
};

}  // namespace qp::fleetsim
