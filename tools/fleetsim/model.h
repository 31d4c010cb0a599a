// The fleet simulator's model: the parameters of every part (devices, agents, patches, the
// edge, the server instances, the rollout), with their defaults. Agent and server costs and
// patch sizes are not typed in here: they come from the project's benchmark outputs
// (calibration.h) and every value keeps the source it came from, so a report can say where
// each number came from. A scenario TOML file (LoadScenario) overrides any of them.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/env.h"
#include "core/result.h"
#include "fleetsim/calibration.h"

namespace qp::fleetsim {

enum class OnlineKind : std::uint8_t {
  kAlways,   // online all the time (servers, routers, boards)
  kDiurnal,  // one session on most days, starting in the local morning
  kRare,     // a session on a few days only (online less than once a week)
};

// One share of the population and its online pattern. Sessions are drawn per device and
// local day from a counter-based hash, so a device's whole history needs no stored state.
struct OnlineClass {
  std::string name;
  double share = 0;
  OnlineKind kind = OnlineKind::kAlways;
  double day_probability = 1;  // kDiurnal: the chance of a session on a given day
  double start_hour_mean = 8;  // kDiurnal: local start hour, normal
  double start_hour_sd = 2;
  double hours_min = 1;  // session length, uniform (kDiurnal, kRare)
  double hours_max = 1;
  double mean_days_between = 10;  // kRare: one session every this many days on average
};

struct TimeZone {
  double offset_hours = 0;
  double share = 0;
};

// The component version a device runs, and what it downloads.
struct Base {
  std::string name;  // "N", "N-1", "N-2", "unknown"
  double share = 0;
  Param patch_bytes;          // the patch from this base
  bool full_package = false;  // no patch for this base: the full package instead
};

enum class AgentKind : std::uint8_t {
  kWatch,      // quietpatchd with watch: woken by the server, and checks every interval
  kPoll,       // a check every interval plus a uniform jitter (quietpatchd, Chrome, Mender, ...)
  kAptTimers,  // Debian: apt-daily.timer (download) then apt-daily-upgrade.timer (install)
};

// How one kind of updater behaves on a device. Every agent model runs on the same population.
struct AgentModel {
  std::string name;
  AgentKind kind = AgentKind::kPoll;
  double interval_s = 3600;  // regular checks (kWatch and kPoll)
  double jitter_s = 300;     // uniform extra delay, 0..jitter, after each check
  // When a session starts (boot, network up), the first check comes within U(0, this).
  double connect_delay_s = 60;
  bool full_package = false;  // downloads the whole package instead of the patch
  // Backoff after a failed download: quietpatchd's (10 s doubling, at most max_backoff_s);
  // when false the next regular check retries.
  bool backoff = true;
  double max_backoff_s = 6 * 3600;
  // kAptTimers: apt-daily at 06:00 and 18:00 local plus up to update_delay_h, then
  // apt-daily-upgrade at upgrade_hour plus up to upgrade_delay_min (Persistent=true).
  double update_delay_h = 12;
  double upgrade_hour = 6;
  double upgrade_delay_min = 60;
  // Reports sent to the server per install: the first when the download starts, the rest
  // with the outcome (quietpatchd: "downloading", then "protected" or "rolled_back"). The
  // auto-halt rule needs reports.
  int reports_per_install = 2;
};

struct StageStep {
  double at_s = 0;
  double percent = 100;
};

struct Rollout {
  std::vector<StageStep> stages{{0, 100}};
  // quietpatch-server's auto-halt rule: at least min_reports devices reported and more than
  // max_failure_percent of them failed or rolled back.
  Param halt_min_reports;
  Param halt_max_failure_percent;
  double operator_halt_at_s = -1;       // an operator halts at this time (< 0: never)
  double resume_after_halt_s = -1;      // an operator resumes this long after a halt (< 0: never)
  bool resume_excludes_failing = true;  // on resume, the failing device class is held back
};

// An injected failure: devices of one class fail their health check and roll back.
struct Failure {
  double class_share = 0;  // share of devices in the failing class
  double probability = 0;  // chance an install on such a device rolls back
};

struct Network {
  double median_mbps = 20;  // device bandwidth, log-normal
  double sigma = 1.0;
  double download_failure_probability = 0.01;  // per attempt
};

struct Edge {
  double capacity_gbps = 2000;  // the CDN's egress for this vendor
  double cost_per_gb = 0.02;    // USD
};

// What one quietpatch-server instance holds and serves, and what a device's agent costs.
struct Costs {
  Param fanout_s_per_watcher;       // time to answer one watcher on a new timestamp
  Param watcher_kb;                 // server memory per open watch
  double watcher_memory_mb = 4096;  // memory an instance gives to watches
  Param reports_per_s;              // reports one instance stores per second
  Param requests_per_s;             // timestamp.json requests one instance serves per second
  Param install_s;                  // device time to install the patch (stage, verify, swap, fsync)
  Param install_cpu_s;              // CPU seconds of that install (the store alone)
  // On a loopback host: the CPU one install costs the agent (check to report) and the server.
  Param loopback_agent_cpu_s;
  Param loopback_server_cpu_s;
  int instances = 0;  // 0: as many as the peak of watchers needs
};

struct Population {
  std::uint64_t devices = 1'000'000;
  double auto_install_share = 0.95;  // "Automatically Install" on
  std::vector<OnlineClass> classes;
  std::vector<TimeZone> zones;
  std::vector<Base> bases;
  Param package_bytes;  // the full package (fallback, and what whole-package updaters fetch)
  // >= 0: every agent started (and checked) this long before publication, together, as
  // in the loopback demo; < 0: agents run since long before (their poll phase is at
  // equilibrium).
  double started_before_publication_s = -1;
};

struct Host {
  // > 0: all devices share this many cores and one disk (a loopback fleet on one machine).
  int cores = 0;
};

struct Model {
  std::string name = "fleet";
  std::uint64_t seed = 1;
  double horizon_h = 14 * 24;
  double step_ms = 1000;  // coupling resolution: egress share, halts, stage changes
  double publication_utc_hour = 17;
  int threads = 2;
  Population population;
  std::vector<AgentModel> agents;
  Rollout rollout;
  Failure failure;
  Network network;
  Edge edge;
  Costs costs;
  Host host;
  // Parameters whose sources are worth printing beyond the Param fields.
  std::vector<std::string> notes;
};

// The standard model: a world population, quietpatch (watch + edge; polling only) and the
// four anchors, with costs and sizes from `calibration`. kNotFound when a figure it needs
// is in no benchmark result.
Result<Model> DefaultModel(const Calibration& calibration);

inline constexpr std::size_t kMaxScenarioBytes = 256 * 1024;

// Reads a scenario TOML file over `model`: any field it names replaces the default (see
// docs/fleetsim.md for the fields). kInvalidArgument naming the file, line and field;
// kTooLarge over kMaxScenarioBytes. `model` may be partly changed on failure.
Status LoadScenario(Env* env, const std::string& path, const Calibration& calibration,
                    Model* model);
// The same on a file's text; `name` is how errors cite it.
Status ParseScenario(std::string_view text, const std::string& name, const Calibration& calibration,
                     Model* model);

// kInvalidArgument when shares do not add up to 1, a count is out of range, or the state
// would not fit in memory.
Status Validate(const Model& model);

}  // namespace qp::fleetsim
