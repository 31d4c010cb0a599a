// The simulator's engine, inside: the device flags, the shared resources, what the workers
// sum over a step, a worker (one range of devices: its calendar, its events, the updaters'
// behaviour, in worker.cc) and the engine that steps them and settles what they share
// (simulator.cc). Only simulator.cc and worker.cc include it.
#pragma once

#include <array>
#include <cstdint>
#include <queue>
#include <utility>
#include <vector>

#include "fleetsim/calendar.h"
#include "fleetsim/model.h"
#include "fleetsim/population.h"
#include "fleetsim/simulator.h"

namespace qp::fleetsim::engine {

// DeviceState::flags
constexpr std::uint8_t kDownloaded = 1;   // apt: in the cache, waiting for the upgrade timer
constexpr std::uint8_t kResume = 2;       // aux holds the bytes left of an interrupted download
constexpr std::uint8_t kReported = 4;     // it reported its first state (counts for the halt rule)
constexpr std::uint8_t kReachable = 8;    // online at some point before the horizon
constexpr std::uint8_t kReach1h = 16;     // online at some point in the first hour
constexpr std::uint8_t kInterrupt = 32;   // its pending download event is its session's end
constexpr std::uint8_t kWoken = 64;       // its pending check is a watch wake-up
constexpr std::uint8_t kDiskPhase = 128;  // a loopback install's disk part (after its CPU part)

inline bool Terminal(Phase p) {
  return p == Phase::kProtected || p == Phase::kRolledBack || p == Phase::kOptedOut;
}

// What devices share: the edge's egress, and a loopback host's cores and disk. A job on one
// (a download, an install's CPU or disk part) ends when the resource's virtual clock, which
// runs at the share each job gets, has run the job's own duration.
enum Resource : int { kEgress, kCpu, kDisk, kResources };

// Values settled between steps; read-only while the workers run a step.
struct Globals {
  std::int64_t step = 0;
  double step_start_ms = 0;
  // Each shared resource's virtual clock at the step's start, and its speed during the step
  // (the edge: min(1, capacity / demand); the host's cores and disk: processor sharing).
  std::array<double, kResources> clock_ms{};
  std::array<double, kResources> rate{1, 1, 1};
  double percent = 100;
  bool halted = false;
  bool hold_failing = false;  // after a resume: the failing class is held back
  bool broadcast = false;     // wake every online watcher at this step's start
};

// One worker's sums over one step.
struct Counters {
  std::int64_t demand_bps = 0;  // change of the summed bandwidth of running downloads
  std::int64_t installs = 0;    // change of installs in their CPU part on the loopback host
  std::int64_t disk_users = 0;  // change of installs in their disk part
  std::uint64_t reports = 0;
  std::uint64_t reported_devices = 0;
  std::uint64_t failed_devices = 0;
  std::uint64_t wake_checks = 0;
  std::uint64_t downloads_started = 0;
  std::uint64_t started_while_halted = 0;
  std::uint64_t events = 0;
  std::int64_t queued = 0;   // change of calendar entries
  double egress_bytes = 0;   // bytes to download, counted at the start, less what was left
  double egress_bit_ms = 0;  // bandwidth x ms in the step of downloads started (+), ended (-)
};

class Engine;

class Worker {
 public:
  Worker(Engine* e, std::uint64_t lo, std::uint64_t hi) : e_(e), lo_(lo), hi_(hi) {}
  void Init();
  // A step in two phases. In the first, calendar events run, but whatever needs a shared
  // resource's clock (a job's start, a session's end during a download) waits, because the
  // step's share of the resource depends on the jobs that start in it. In the second, with
  // the step's shares settled, those run, then the jobs that end in the step and what
  // follows from them.
  void RunPhaseA();
  void RunPhaseB();
  void SampleOnline(std::uint64_t stride, std::vector<std::int64_t>* diff,
                    std::vector<std::int64_t>* starts);
  // The first step >= from whose bucket holds an entry, or `limit` when none before it.
  std::int64_t NextBusy(std::int64_t from, std::int64_t limit) const {
    return calendar_.NextBusy(from, limit);
  }
  // The smallest live job target on resource r (infinity when none); drops stale entries.
  double NextJob(Resource r);
  Counters TakeCounters() {
    Counters c = c_;
    c_ = Counters{};
    return c;
  }
  // Only the changes of what the shared resources' shares depend on (the first phase's).
  Counters TakeShareChanges() {
    Counters c;
    c.demand_bps = std::exchange(c_.demand_bps, 0);
    c.installs = std::exchange(c_.installs, 0);
    c.disk_users = std::exchange(c_.disk_users, 0);
    return c;
  }

 private:
  void Schedule(std::uint64_t local, std::int64_t t);
  void Handle(std::uint64_t local, std::int64_t t);
  void OnCheck(std::uint64_t local, const Traits& tr, std::int64_t t);
  void StartDownload(std::uint64_t local, const Traits& tr, std::int64_t t);
  void OnDownloadEvent(std::uint64_t local, const Traits& tr, std::int64_t t);
  void StartInstall(std::uint64_t local, std::int64_t t);
  void OnInstallEvent(std::uint64_t local, const Traits& tr, std::int64_t t);
  // Queues a job of `own_ms` on resource r from time t; the device's aux holds its target.
  void StartJob(Resource r, std::uint64_t local, std::int64_t t, double own_ms);
  // Schedules, at their exact times, the jobs that end within the current step.
  void ReleaseDue();
  bool Live(Resource r, std::uint32_t local, std::uint32_t target) const;
  // The milliseconds from t to the current step's end.
  double StepLeft(std::int64_t t) const;
  void Broadcast(std::int64_t t);
  // Runs the calendar's events of the current step, in rounds, until none is left.
  void RunBucket(bool release_jobs);
  void FinishDownload(std::uint64_t local, const Traits& tr, std::int64_t t);
  void Interrupt(std::uint64_t local, const Traits& tr, std::int64_t t);

  std::int64_t NextRegular(std::uint64_t id, const Traits& tr, std::int64_t t) const;
  std::int64_t Connect(std::uint64_t id, std::int64_t online_at) const;
  std::int64_t NextAptUpdate(std::uint64_t id, const Traits& tr, std::int64_t t) const;
  std::int64_t NextAptUpgrade(std::uint64_t id, const Traits& tr, std::int64_t t) const;
  std::int64_t PrevAptUpgrade(std::uint64_t id, const Traits& tr, std::int64_t t) const;
  std::int64_t AptUpgradeOn(std::uint64_t id, const Traits& tr, std::int64_t day) const;
  bool Eligible(const Traits& tr) const;
  double Payload(const Traits& tr) const;

  Engine* e_;
  std::uint64_t lo_, hi_;
  Calendar calendar_;
  using Job = std::pair<std::uint32_t, std::uint32_t>;  // (target on the clock, device)
  struct Pending {
    Resource r;
    std::uint32_t local;
    std::int64_t t;
    double own_ms;  // < 0: a session's end during a download, not a start
  };
  bool deferring_ = false;  // in the first phase of a step
  std::vector<Pending> pending_;
  std::array<std::priority_queue<Job, std::vector<Job>, std::greater<>>, kResources> jobs_;
  Counters c_;
};

class Engine {
 public:
  Engine(const Model& m, const Fleet& f, const AgentModel& a, std::vector<DeviceState>* d)
      : model(m), fleet(f), agent(a), devices(*d) {}

  RunResult Run();

  const Model& model;
  const Fleet& fleet;
  const AgentModel& agent;
  std::vector<DeviceState>& devices;
  Globals g;
  double step_ms = 1000;
  std::int64_t steps = 0;
  double fanout_ms = 0;  // a watcher is answered within U(0, this) of a new timestamp
  double cores = 0;

  double Clock(Resource r, std::int64_t t) const {
    return g.clock_ms[r] + (static_cast<double>(t) - g.step_start_ms) * g.rate[r];
  }
};

}  // namespace qp::fleetsim::engine
