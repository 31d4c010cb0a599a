#include "fleetsim/simulator.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cmath>
#include <limits>
#include <queue>
#include <thread>
#include <utility>

#include "core/clock.h"

namespace qp::fleetsim {
namespace {

// DeviceState::flags
constexpr std::uint8_t kDownloaded = 1;   // apt: in the cache, waiting for the upgrade timer
constexpr std::uint8_t kResume = 2;       // aux holds the bytes left of an interrupted download
constexpr std::uint8_t kReported = 4;     // it reported its first state (counts for the halt rule)
constexpr std::uint8_t kReachable = 8;    // online at some point before the horizon
constexpr std::uint8_t kReach1h = 16;     // online at some point in the first hour
constexpr std::uint8_t kInterrupt = 32;   // its pending download event is its session's end
constexpr std::uint8_t kWoken = 64;       // its pending check is a watch wake-up
constexpr std::uint8_t kDiskPhase = 128;  // a loopback install's disk part (after its CPU part)

// The calendar: 2^20 buckets of one step each (12 days at 1 s); later events wait in a
// far list that is swept every half turn.
constexpr std::int64_t kRingBits = 20;
constexpr std::int64_t kRing = std::int64_t{1} << kRingBits;

bool Terminal(Phase p) {
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

// The workers' meeting point between steps: the last to arrive runs `completion`, then all
// go on. It spins, then yields: the workers are as many as the cores, and steps are short
// (a futex sleep and wake-up per step cost more than the step's work).
class StepBarrier {
 public:
  explicit StepBarrier(int n) : n_(n) {}
  template <typename F>
  void ArriveAndWait(F& completion) {
    const std::uint64_t gen = gen_.load(std::memory_order_acquire);
    if (count_.fetch_add(1, std::memory_order_acq_rel) + 1 == n_) {
      completion();
      count_.store(0, std::memory_order_relaxed);
      gen_.store(gen + 1, std::memory_order_release);
      return;
    }
    for (int spins = 0; gen_.load(std::memory_order_acquire) == gen; ++spins) {
      if (spins > 2000) std::this_thread::yield();
    }
  }

 private:
  const int n_;
  std::atomic<int> count_{0};
  std::atomic<std::uint64_t> gen_{0};
};

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
  std::int64_t NextBusy(std::int64_t from, std::int64_t limit) const;
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
  void SweepFar();
  // Runs the calendar's events of the current step, in rounds, until none is left.
  void RunBucket(bool release_jobs);
  void FinishDownload(std::uint64_t local, const Traits& tr, std::int64_t t);
  void Interrupt(std::uint64_t local, const Traits& tr, std::int64_t t);

  std::int64_t NextRegular(std::uint64_t id, const Traits& tr, std::int64_t t) const;
  std::int64_t Connect(std::uint64_t id, std::int64_t online_at) const;
  std::int64_t NextAptUpdate(std::uint64_t id, const Traits& tr, std::int64_t t) const;
  std::int64_t NextAptUpgrade(std::uint64_t id, const Traits& tr, std::int64_t t) const;
  std::int64_t PrevAptUpgrade(std::uint64_t id, const Traits& tr, std::int64_t t) const;
  bool Eligible(const Traits& tr) const;
  double Payload(const Traits& tr) const;

  Engine* e_;
  std::uint64_t lo_, hi_;
  std::vector<std::vector<std::uint32_t>> ring_;
  std::vector<std::uint64_t> busy_;  // one bit per ring bucket: it holds entries
  std::vector<std::uint32_t> far_;
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

// ---- the worker: one range of devices ---------------------------------------------------

double Worker::StepLeft(std::int64_t t) const {
  return std::max(0.0, e_->g.step_start_ms + e_->step_ms - static_cast<double>(t));
}

void Worker::Schedule(std::uint64_t local, std::int64_t t) {
  DeviceState& d = e_->devices[local + lo_];
  if (t >= e_->fleet.horizon_ms() || t < 0) {
    d.next_ms = kNoEvent;
    return;
  }
  d.next_ms = static_cast<std::uint32_t>(t);
  std::int64_t bucket = static_cast<std::int64_t>(static_cast<double>(t) / e_->step_ms);
  bucket = std::max(bucket, e_->g.step);
  if (bucket - e_->g.step < kRing) {
    const auto slot = static_cast<std::size_t>(bucket & (kRing - 1));
    ring_[slot].push_back(static_cast<std::uint32_t>(local));
    busy_[slot / 64] |= std::uint64_t{1} << (slot % 64);
  } else {
    far_.push_back(static_cast<std::uint32_t>(local));
  }
  ++c_.queued;
}

std::int64_t Worker::NextBusy(std::int64_t from, std::int64_t limit) const {
  std::int64_t step = from;
  while (step < limit) {
    const auto slot = static_cast<std::size_t>(step & (kRing - 1));
    std::uint64_t word = busy_[slot / 64] >> (slot % 64);
    if (word != 0) return std::min(limit, step + std::countr_zero(word));
    step += 64 - static_cast<std::int64_t>(slot % 64);
  }
  return limit;
}

void Worker::SweepFar() {
  std::vector<std::uint32_t> keep;
  for (std::uint32_t local : far_) {
    --c_.queued;
    const DeviceState& d = e_->devices[local + lo_];
    if (d.next_ms == kNoEvent || Terminal(d.phase)) continue;
    std::int64_t bucket = static_cast<std::int64_t>(d.next_ms / e_->step_ms);
    if (bucket < e_->g.step) continue;  // stale: the device moved on
    if (bucket - e_->g.step < kRing) {
      const auto slot = static_cast<std::size_t>(bucket & (kRing - 1));
      ring_[slot].push_back(local);
      busy_[slot / 64] |= std::uint64_t{1} << (slot % 64);
    } else {
      keep.push_back(local);
    }
    ++c_.queued;
  }
  far_.swap(keep);
}

std::int64_t Worker::Connect(std::uint64_t id, std::int64_t online_at) const {
  if (online_at == kNever) return kNever;
  return online_at + static_cast<std::int64_t>(e_->agent.connect_delay_s * 1000 *
                                               Uniform(e_->model.seed, id, Draw::kConnect,
                                                       static_cast<std::uint64_t>(online_at)));
}

std::int64_t Worker::NextRegular(std::uint64_t id, const Traits& tr, std::int64_t t) const {
  const AgentModel& a = e_->agent;
  if (a.kind == AgentKind::kAptTimers) return NextAptUpdate(id, tr, t + 1);  // after this run
  double u = Uniform(e_->model.seed, id, Draw::kJitter, static_cast<std::uint64_t>(t));
  return t + static_cast<std::int64_t>((a.interval_s + a.jitter_s * u) * 1000);
}

// apt-daily.timer: OnCalendar 06:00 and 18:00 local, RandomizedDelaySec = update_delay_h.
std::int64_t Worker::NextAptUpdate(std::uint64_t id, const Traits& tr, std::int64_t t) const {
  const AgentModel& a = e_->agent;
  std::int64_t best = kNever;
  const std::int64_t day = e_->fleet.LocalDay(tr, t);
  for (std::int64_t dd = day - 1; dd <= day + 1; ++dd) {
    for (std::int64_t k = 0; k < 2; ++k) {
      double u =
          Uniform(e_->model.seed, id, Draw::kAptUpdate, static_cast<std::uint64_t>(dd * 2 + k));
      std::int64_t fire = e_->fleet.DayStart(tr, dd) + (6 + 12 * k) * kHourMs +
                          static_cast<std::int64_t>(u * a.update_delay_h * kHourMs);
      if (fire >= t) best = std::min(best, fire);
    }
  }
  return best;
}

// apt-daily-upgrade.timer: OnCalendar upgrade_hour local, RandomizedDelaySec = upgrade_delay_min.
std::int64_t Worker::NextAptUpgrade(std::uint64_t id, const Traits& tr, std::int64_t t) const {
  const AgentModel& a = e_->agent;
  const std::int64_t day = e_->fleet.LocalDay(tr, t);
  for (std::int64_t dd = day; dd <= day + 1; ++dd) {
    double u = Uniform(e_->model.seed, id, Draw::kAptUpgrade, static_cast<std::uint64_t>(dd));
    std::int64_t fire = e_->fleet.DayStart(tr, dd) +
                        static_cast<std::int64_t>(a.upgrade_hour * kHourMs) +
                        static_cast<std::int64_t>(u * a.upgrade_delay_min * 60000);
    if (fire >= t) return fire;
  }
  return kNever;
}

std::int64_t Worker::PrevAptUpgrade(std::uint64_t id, const Traits& tr, std::int64_t t) const {
  const AgentModel& a = e_->agent;
  const std::int64_t day = e_->fleet.LocalDay(tr, t);
  for (std::int64_t dd = day; dd >= day - 1; --dd) {
    double u = Uniform(e_->model.seed, id, Draw::kAptUpgrade, static_cast<std::uint64_t>(dd));
    std::int64_t fire = e_->fleet.DayStart(tr, dd) +
                        static_cast<std::int64_t>(a.upgrade_hour * kHourMs) +
                        static_cast<std::int64_t>(u * a.upgrade_delay_min * 60000);
    if (fire < t) return fire;
  }
  return kNever;
}

bool Worker::Eligible(const Traits& tr) const {
  const Globals& g = e_->g;
  return !g.halted && static_cast<double>(tr.bucket) < g.percent * 100 &&
         !(g.hold_failing && tr.failing);
}

double Worker::Payload(const Traits& tr) const {
  const Population& p = e_->model.population;
  const Base& b = p.bases[tr.base];
  return (e_->agent.full_package || b.full_package) ? p.package_bytes.value : b.patch_bytes.value;
}

void Worker::Init() {
  ring_.assign(static_cast<std::size_t>(kRing), {});
  busy_.assign(static_cast<std::size_t>(kRing / 64), 0);
  far_.clear();
  const Model& m = e_->model;
  const AgentModel& a = e_->agent;
  const Fleet& f = e_->fleet;
  for (std::uint64_t id = lo_; id < hi_; ++id) {
    const std::uint64_t local = id - lo_;
    DeviceState& d = e_->devices[id];
    d = DeviceState{};
    d.protected_ms = kNoEvent;
    const Traits tr = f.TraitsOf(id);
    const std::int64_t on = f.NextOnline(id, tr, 0);
    if (on != kNever) d.flags |= kReachable;
    if (on < kHourMs) d.flags |= kReach1h;
    if (!tr.auto_install) {
      d.phase = Phase::kOptedOut;
      d.next_ms = kNoEvent;
      continue;
    }
    std::int64_t t = kNever;
    if (a.kind == AgentKind::kAptTimers) {
      t = NextAptUpdate(id, tr, 0);
    } else if (on != 0) {
      t = Connect(id, on);
    } else if (a.kind == AgentKind::kWatch) {
      t = static_cast<std::int64_t>(e_->fanout_ms * Uniform(m.seed, id, Draw::kWake));
      d.flags |= kWoken;
    } else if (m.population.started_before_publication_s >= 0) {
      // Started together before publication: a check at start, then interval + jitter.
      t = static_cast<std::int64_t>(-m.population.started_before_publication_s * 1000);
      for (std::uint64_t n = 0; t < 0; ++n) {
        double u = Uniform(m.seed, id, Draw::kPollPhase, n);
        t += static_cast<std::int64_t>((a.interval_s + a.jitter_s * u) * 1000);
      }
    } else {
      // At equilibrium, the interval that spans publication is length-biased, and
      // publication falls uniformly inside it.
      const double lo = a.interval_s, hi = a.interval_s + a.jitter_s;
      double len = std::sqrt(lo * lo + Uniform(m.seed, id, Draw::kPollPhase) * (hi * hi - lo * lo));
      t = static_cast<std::int64_t>(len * 1000 * Uniform(m.seed, id, Draw::kPollPhase2));
    }
    Schedule(local, t);
  }
}

void Worker::SampleOnline(std::uint64_t stride, std::vector<std::int64_t>* diff,
                          std::vector<std::int64_t>* starts) {
  const Fleet& f = e_->fleet;
  const std::int64_t horizon = f.horizon_ms();
  const std::int64_t minutes = static_cast<std::int64_t>(diff->size()) - 1;
  std::uint64_t first = (lo_ + stride - 1) / stride * stride;
  for (std::uint64_t id = first; id < hi_; id += stride) {
    const Traits tr = f.TraitsOf(id);
    f.ForEachSession(id, tr, 0, horizon, [&](std::int64_t s, std::int64_t e) {
      std::int64_t a = std::clamp<std::int64_t>(s, 0, horizon) / 60000;
      std::int64_t b = std::clamp<std::int64_t>(e, 0, horizon) / 60000;
      (*diff)[static_cast<std::size_t>(std::min(a, minutes))] += 1;
      (*diff)[static_cast<std::size_t>(std::min(b, minutes))] -= 1;
      if (s >= 0 && s < horizon) (*starts)[static_cast<std::size_t>(a)] += 1;
    });
  }
}

void Worker::Broadcast(std::int64_t t) {
  const Fleet& f = e_->fleet;
  for (std::uint64_t id = lo_; id < hi_; ++id) {
    DeviceState& d = e_->devices[id];
    if (d.phase != Phase::kWaiting || (d.flags & kDownloaded)) continue;
    const Traits tr = f.TraitsOf(id);
    if (!f.OnlineAt(id, tr, t)) continue;
    double u = Uniform(e_->model.seed, id, Draw::kWake, static_cast<std::uint64_t>(t));
    d.flags |= kWoken;
    Schedule(id - lo_, t + static_cast<std::int64_t>(e_->fanout_ms * u));
  }
}

void Worker::RunPhaseA() {
  const std::int64_t k = e_->g.step;
  if (e_->g.broadcast && e_->agent.kind == AgentKind::kWatch) {
    Broadcast(static_cast<std::int64_t>(e_->g.step_start_ms));
  }
  if (k % (kRing / 2) == 0) SweepFar();
  deferring_ = true;
  RunBucket(false);
  deferring_ = false;
}

void Worker::RunPhaseB() {
  std::vector<Pending> pending;
  pending.swap(pending_);
  for (const Pending& p : pending) {
    if (p.own_ms >= 0) {
      StartJob(p.r, p.local, p.t, p.own_ms);
    } else {
      Interrupt(p.local, e_->fleet.TraitsOf(p.local + lo_), p.t);
    }
  }
  RunBucket(true);
  const auto slot = static_cast<std::size_t>(e_->g.step & (kRing - 1));
  std::vector<std::uint32_t>().swap(ring_[slot]);
  busy_[slot / 64] &= ~(std::uint64_t{1} << (slot % 64));
}

void Worker::RunBucket(bool release_jobs) {
  const auto slot = static_cast<std::size_t>(e_->g.step & (kRing - 1));
  auto& bucket = ring_[slot];
  const double lo_ms = e_->g.step_start_ms, hi_ms = lo_ms + e_->step_ms;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> batch;  // (time, device)
  while (true) {
    if (release_jobs) ReleaseDue();
    if (bucket.empty()) break;
    std::vector<std::uint32_t> ids;
    ids.swap(bucket);
    c_.queued -= static_cast<std::int64_t>(ids.size());
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    batch.clear();
    for (std::uint32_t local : ids) {
      const DeviceState& d = e_->devices[local + lo_];
      if (d.next_ms == kNoEvent || Terminal(d.phase)) continue;
      if (d.next_ms < lo_ms || d.next_ms >= hi_ms) continue;  // stale: moved elsewhere
      batch.emplace_back(d.next_ms, local);
    }
    std::sort(batch.begin(), batch.end());
    for (auto [t, local] : batch) Handle(local, t);
  }
}

void Worker::Handle(std::uint64_t local, std::int64_t t) {
  DeviceState& d = e_->devices[local + lo_];
  const std::uint64_t id = local + lo_;
  const Traits tr = e_->fleet.TraitsOf(id);
  ++c_.events;
  switch (d.phase) {
    case Phase::kWaiting:
      OnCheck(local, tr, t);
      break;
    case Phase::kDownloading:
      OnDownloadEvent(local, tr, t);
      break;
    case Phase::kInstalling:
      OnInstallEvent(local, tr, t);
      break;
    default:
      break;
  }
}

void Worker::OnCheck(std::uint64_t local, const Traits& tr, std::int64_t t) {
  DeviceState& d = e_->devices[local + lo_];
  const std::uint64_t id = local + lo_;
  const Fleet& f = e_->fleet;
  if (d.flags & kWoken) {
    d.flags &= static_cast<std::uint8_t>(~kWoken);
    ++c_.wake_checks;
  }
  if (!f.OnlineAt(id, tr, t)) {
    // Offline: the next session's start brings a check (and runs a missed timer, as
    // systemd's Persistent=true does).
    Schedule(local, Connect(id, f.NextOnline(id, tr, t)));
    return;
  }
  if (e_->agent.kind == AgentKind::kAptTimers && (d.flags & kDownloaded)) {
    StartInstall(local, t);
    return;
  }
  if (Eligible(tr)) {
    StartDownload(local, tr, t);
    return;
  }
  Schedule(local, NextRegular(id, tr, t));
}

void Worker::StartJob(Resource r, std::uint64_t local, std::int64_t t, double own_ms) {
  if (deferring_) {
    pending_.push_back({r, static_cast<std::uint32_t>(local), t, own_ms});
    return;
  }
  DeviceState& d = e_->devices[local + lo_];
  d.aux = static_cast<std::uint32_t>(std::ceil(e_->Clock(r, t) + own_ms));
  if (r == kEgress) c_.egress_bit_ms += e_->fleet.Bandwidth(local + lo_) * StepLeft(t);
  jobs_[r].emplace(d.aux, static_cast<std::uint32_t>(local));
}

bool Worker::Live(Resource r, std::uint32_t local, std::uint32_t target) const {
  const DeviceState& d = e_->devices[local + lo_];
  if (d.aux != target) return false;
  switch (r) {
    case kEgress:
      return d.phase == Phase::kDownloading;
    case kCpu:
      return d.phase == Phase::kInstalling && !(d.flags & kDiskPhase);
    default:
      return d.phase == Phase::kInstalling && (d.flags & kDiskPhase);
  }
}

double Worker::NextJob(Resource r) {
  auto& q = jobs_[r];
  while (!q.empty() && !Live(r, q.top().second, q.top().first)) q.pop();
  return q.empty() ? std::numeric_limits<double>::infinity() : q.top().first;
}

void Worker::ReleaseDue() {
  const Globals& g = e_->g;
  for (int i = 0; i < kResources; ++i) {
    const auto r = static_cast<Resource>(i);
    const double end = g.clock_ms[r] + e_->step_ms * g.rate[r];
    while (NextJob(r) <= end) {
      auto [target, local] = jobs_[r].top();
      jobs_[r].pop();
      double at = g.step_start_ms + std::max(0.0, (target - g.clock_ms[r]) / g.rate[r]);
      auto t = static_cast<std::int64_t>(std::ceil(at));
      t = std::min(t, static_cast<std::int64_t>(g.step_start_ms + e_->step_ms) - 1);
      DeviceState& d = e_->devices[local + lo_];
      d.flags &= static_cast<std::uint8_t>(~kInterrupt);  // this event is the job's end
      Schedule(local, std::max(t, static_cast<std::int64_t>(g.step_start_ms)));
    }
  }
}

void Worker::StartDownload(std::uint64_t local, const Traits& tr, std::int64_t t) {
  DeviceState& d = e_->devices[local + lo_];
  const double bytes = (d.flags & kResume) ? d.aux : Payload(tr);
  const double bandwidth = e_->fleet.Bandwidth(local + lo_);
  if (!(d.flags & kReported) && e_->agent.reports_per_install > 0) {
    d.flags |= kReported;
    ++c_.reports;
    ++c_.reported_devices;
  }
  ++c_.downloads_started;
  if (e_->g.halted) ++c_.started_while_halted;
  c_.egress_bytes += bytes;
  d.flags &= static_cast<std::uint8_t>(~kResume);
  d.phase = Phase::kDownloading;
  c_.demand_bps += std::llround(bandwidth);
  StartJob(kEgress, local, t, bytes * 8 / bandwidth * 1000);
  // The session's end interrupts it, unless the download ends first (ReleaseDue then
  // moves the event to its end).
  const std::int64_t end = e_->fleet.SessionEnd(local + lo_, tr, t);
  d.flags |= kInterrupt;
  Schedule(local, end == kNever ? e_->fleet.horizon_ms() : end);
}

void Worker::OnDownloadEvent(std::uint64_t local, const Traits& tr, std::int64_t t) {
  DeviceState& d = e_->devices[local + lo_];
  if (!(d.flags & kInterrupt)) {
    FinishDownload(local, tr, t);
    return;
  }
  if (deferring_) {
    d.next_ms = kNoEvent;  // consumed: the second phase finishes it
    pending_.push_back({kEgress, static_cast<std::uint32_t>(local), t, -1});
    return;
  }
  Interrupt(local, tr, t);
}

// The device's session ended during its download (or the horizon came).
void Worker::Interrupt(std::uint64_t local, const Traits& tr, std::int64_t t) {
  DeviceState& d = e_->devices[local + lo_];
  const std::uint64_t id = local + lo_;
  if (d.phase != Phase::kDownloading) return;
  const double now = e_->Clock(kEgress, t);
  if (now + 0.5 >= d.aux) {  // it ended with the session
    FinishDownload(local, tr, t);
    return;
  }
  // The bytes left wait for the next session (downloads are resumable).
  const double bandwidth = e_->fleet.Bandwidth(id);
  const double left = (d.aux - now) / 1000 * bandwidth / 8;
  c_.egress_bytes -= left;  // counted whole at the start
  d.aux = static_cast<std::uint32_t>(std::clamp(left, 1.0, 4e9));
  d.flags = static_cast<std::uint8_t>((d.flags | kResume) & ~kInterrupt);
  d.phase = Phase::kWaiting;
  c_.demand_bps -= std::llround(bandwidth);
  c_.egress_bit_ms -= bandwidth * StepLeft(t);
  Schedule(local, Connect(id, e_->fleet.NextOnline(id, tr, t + 1)));
}

void Worker::FinishDownload(std::uint64_t local, const Traits& tr, std::int64_t t) {
  DeviceState& d = e_->devices[local + lo_];
  const std::uint64_t id = local + lo_;
  const Model& m = e_->model;
  c_.demand_bps -= std::llround(e_->fleet.Bandwidth(id));
  c_.egress_bit_ms -= e_->fleet.Bandwidth(id) * StepLeft(t);
  d.flags &= static_cast<std::uint8_t>(~kInterrupt);
  if (d.attempts < 255) ++d.attempts;
  d.phase = Phase::kWaiting;
  if (Uniform(m.seed, id, Draw::kDownloadFails, d.attempts) <
      m.network.download_failure_probability) {
    if (d.failures < 30) ++d.failures;
    const AgentModel& a = e_->agent;
    if (a.backoff) {
      double backoff_s = std::min(10.0 * std::ldexp(1.0, d.failures - 1), a.max_backoff_s);
      Schedule(local, t + static_cast<std::int64_t>(backoff_s * 1000));
    } else {
      Schedule(local, NextRegular(id, tr, t));
    }
    return;
  }
  d.failures = 0;
  if (e_->agent.kind == AgentKind::kAptTimers) {
    d.flags |= kDownloaded;
    // A missed upgrade run (the device was off at its time) runs now, after the update,
    // as apt-daily-upgrade.service is ordered after apt-daily.service.
    std::int64_t prev = PrevAptUpgrade(id, tr, t);
    if (prev != kNever && prev >= 0 && !e_->fleet.OnlineAt(id, tr, prev)) {
      StartInstall(local, t);
    } else {
      Schedule(local, NextAptUpgrade(id, tr, t));
    }
    return;
  }
  StartInstall(local, t);
}

// On a device, an install takes its measured wall time. On a loopback host (the demo's
// validation), its CPU part (the agent's, check to report, and the server's) shares the
// host's cores, then the rest of the store's wall time (fsyncs) shares the host's disk.
void Worker::StartInstall(std::uint64_t local, std::int64_t t) {
  DeviceState& d = e_->devices[local + lo_];
  const Costs& c = e_->model.costs;
  d.phase = Phase::kInstalling;
  if (e_->cores > 0) {
    d.flags &= static_cast<std::uint8_t>(~kDiskPhase);
    d.next_ms = kNoEvent;  // ReleaseDue schedules its end
    ++c_.installs;
    StartJob(kCpu, local, t, (c.loopback_agent_cpu_s.value + c.loopback_server_cpu_s.value) * 1000);
  } else {
    Schedule(local, t + static_cast<std::int64_t>(c.install_s.value * 1000));
  }
}

void Worker::OnInstallEvent(std::uint64_t local, const Traits& tr, std::int64_t t) {
  DeviceState& d = e_->devices[local + lo_];
  const std::uint64_t id = local + lo_;
  if (e_->cores > 0) {
    if (!(d.flags & kDiskPhase)) {
      --c_.installs;
      const Costs& c = e_->model.costs;
      d.flags |= kDiskPhase;
      d.next_ms = kNoEvent;
      ++c_.disk_users;
      StartJob(kDisk, local, t, std::max(0.0, (c.install_s.value - c.install_cpu_s.value) * 1000));
      return;
    }
    d.flags &= static_cast<std::uint8_t>(~kDiskPhase);
    --c_.disk_users;
  }
  const Model& m = e_->model;
  const int rest = std::max(0, e_->agent.reports_per_install - 1);
  c_.reports += static_cast<std::uint64_t>(rest);
  d.next_ms = kNoEvent;
  if (tr.failing && Uniform(m.seed, id, Draw::kRollsBack) < m.failure.probability) {
    d.phase = Phase::kRolledBack;
    if (d.flags & kReported) ++c_.failed_devices;
    return;
  }
  d.phase = Phase::kProtected;
  d.protected_ms = static_cast<std::uint32_t>(t);
}

// ---- the engine: steps, couplings, results ----------------------------------------------

double StagePercent(const Rollout& r, double t_s) {
  double p = 0;
  for (const StageStep& s : r.stages) {
    if (s.at_s <= t_s) p = s.percent;
  }
  return p;
}

RunResult Engine::Run() {
  const auto wall0 = Clock::Real()->Monotonic();  // the run's own wall time, for the report
  RunResult r;
  r.agent = agent.name;
  r.devices = fleet.size();
  step_ms = model.step_ms;
  const std::int64_t horizon = fleet.horizon_ms();
  steps = static_cast<std::int64_t>(std::ceil(static_cast<double>(horizon) / step_ms));
  cores = model.host.cores;
  const int threads =
      static_cast<int>(std::clamp<std::uint64_t>(static_cast<std::uint64_t>(model.threads), 1,
                                                 std::max<std::uint64_t>(1, fleet.size() / 1024)));
  std::vector<Worker> workers;
  for (int i = 0; i < threads; ++i) {
    workers.emplace_back(
        this, fleet.size() * static_cast<std::uint64_t>(i) / static_cast<std::uint64_t>(threads),
        fleet.size() * static_cast<std::uint64_t>(i + 1) / static_cast<std::uint64_t>(threads));
  }

  // Who is online, per minute, from every stride-th device: the watch connections and
  // the regular checks, which do not depend on the rollout.
  const std::uint64_t stride = std::max<std::uint64_t>(1, fleet.size() / (std::uint64_t{1} << 22));
  r.online_sample_stride = static_cast<double>(stride);
  const std::size_t minutes = static_cast<std::size_t>(horizon / 60000) + 1;
  std::vector<std::vector<std::int64_t>> diffs(workers.size(),
                                               std::vector<std::int64_t>(minutes + 1));
  std::vector<std::vector<std::int64_t>> starts(workers.size(),
                                                std::vector<std::int64_t>(minutes + 1));
  {
    std::vector<std::thread> ts;
    for (std::size_t i = 0; i < workers.size(); ++i) {
      ts.emplace_back([&, i] { workers[i].SampleOnline(stride, &diffs[i], &starts[i]); });
    }
    for (auto& t : ts) t.join();
  }
  std::vector<double> online(minutes), session_starts(minutes);
  {
    std::int64_t run = 0;
    for (std::size_t mnt = 0; mnt < minutes; ++mnt) {
      std::int64_t st = 0;
      for (std::size_t i = 0; i < workers.size(); ++i) {
        run += diffs[i][mnt];
        st += starts[i][mnt];
      }
      online[mnt] = static_cast<double>(run) * static_cast<double>(stride);
      session_starts[mnt] = static_cast<double>(st) * static_cast<double>(stride);
    }
  }
  const double peak_online = *std::max_element(online.begin(), online.end());
  const double watchers_per_instance =
      model.costs.watcher_memory_mb * 1024 / model.costs.watcher_kb.value;
  int instances = model.costs.instances;
  if (instances <= 0)
    instances = std::max(1, static_cast<int>(std::ceil(peak_online / watchers_per_instance)));
  if (agent.kind == AgentKind::kWatch) {
    fanout_ms = model.costs.fanout_s_per_watcher.value * 1000 * online[0] / instances;
  }

  g = Globals{};
  g.percent = StagePercent(model.rollout, 0);
  {
    std::vector<std::thread> ts;
    for (auto& w : workers) ts.emplace_back([&w] { w.Init(); });
    for (auto& t : ts) t.join();
  }

  // Per-second series, settled between steps.
  const std::size_t seconds = static_cast<std::size_t>(horizon / 1000) + 2;
  std::vector<double> egress_bits(seconds), reports(seconds), wakes(seconds);
  std::int64_t demand = 0, installs = 0, disk_users = 0, queued = 0;
  std::uint64_t reported = 0, failed = 0;
  bool operator_halted = false;
  // Halts, resumes and stage changes that take effect at the step starting at t_s.
  auto rollout_changes = [&](double t_s) {
    g.broadcast = false;
    const Rollout& ro = model.rollout;
    if (!g.halted && agent.reports_per_install > 0 &&
        static_cast<double>(reported) >= ro.halt_min_reports.value &&
        static_cast<double>(failed) * 100 >
            ro.halt_max_failure_percent.value * static_cast<double>(reported)) {
      g.halted = true;
      r.halted_at_s = t_s;
      r.halt_reason = "auto-halt: " + std::to_string(failed) + " of " + std::to_string(reported) +
                      " devices failed or rolled back";
    }
    if (!g.halted && !operator_halted && ro.operator_halt_at_s >= 0 &&
        t_s >= ro.operator_halt_at_s) {
      operator_halted = true;
      g.halted = true;
      r.halted_at_s = t_s;
      r.halt_reason = "halted by the operator";
    }
    if (g.halted && r.resumed_at_s < 0 && ro.resume_after_halt_s >= 0 &&
        t_s >= r.halted_at_s + ro.resume_after_halt_s) {
      g.halted = false;
      g.hold_failing = ro.resume_excludes_failing;
      r.resumed_at_s = t_s;
      g.broadcast = true;
    }
    double p = StagePercent(ro, t_s);
    if (p > g.percent) g.broadcast = true;
    g.percent = p;
  };
  double step_demand = 0;      // the demand the step's shares were settled on
  double demand_at_start = 0;  // the demand at the step's start
  double step_bit_ms = 0;      // downloads that started or ended in the step: bandwidth x ms in it
  auto set_rates = [&] {
    const double cap = model.edge.capacity_gbps * 1e9;
    g.rate[kEgress] = demand > 0 ? std::min(1.0, cap / static_cast<double>(demand)) : 1.0;
    g.rate[kCpu] = (cores > 0 && static_cast<double>(installs) > cores)
                       ? cores / static_cast<double>(installs)
                       : 1.0;
    g.rate[kDisk] = disk_users > 1 ? 1.0 / static_cast<double>(disk_users) : 1.0;
    step_demand = static_cast<double>(demand);
  };
  // Between the phases of a step: the shares, with the jobs that start in it.
  auto mid_step = [&] {
    for (auto& w : workers) {
      Counters c = w.TakeShareChanges();
      demand += c.demand_bps;
      installs += c.installs;
      disk_users += c.disk_users;
    }
    set_rates();
  };
  auto settle = [&]() {
    for (auto& w : workers) {
      Counters c = w.TakeCounters();
      r.total_egress_bytes += c.egress_bytes;
      step_bit_ms += c.egress_bit_ms;
      demand += c.demand_bps;
      installs += c.installs;
      disk_users += c.disk_users;
      queued += c.queued;
      reported += c.reported_devices;
      failed += c.failed_devices;
      r.events += c.events;
      r.downloads_started += c.downloads_started;
      r.downloads_started_while_halted += c.started_while_halted;
      const std::size_t sec = static_cast<std::size_t>(g.step_start_ms / 1000);
      reports[sec] += static_cast<double>(c.reports);
      wakes[sec] += static_cast<double>(c.wake_checks);
    }
    // The edge's bits over [from, from + ms) at `rate` bits per second.
    auto serve = [&](double from_ms, double ms, double rate) {
      if (rate <= 0) return;
      while (ms > 0) {
        const double sec_end = (std::floor(from_ms / 1000) + 1) * 1000;
        const double part = std::min(ms, sec_end - from_ms);
        egress_bits[std::min(seconds - 1, static_cast<std::size_t>(from_ms / 1000))] +=
            rate * part / 1000;
        from_ms += part;
        ms -= part;
      }
    };
    // This step: the downloads running at its start for the whole step, and those that
    // started or ended in it for their part of it, each at the step's share.
    serve(g.step_start_ms, step_ms, g.rate[kEgress] * (demand_at_start + step_bit_ms / step_ms));
    step_bit_ms = 0;
    // The next step's clocks and rates.
    for (int i = 0; i < kResources; ++i) g.clock_ms[i] += step_ms * g.rate[i];
    set_rates();  // for the steps skipped below (no job starts in them)
    ++g.step;
    g.step_start_ms = static_cast<double>(g.step) * step_ms;
    demand_at_start = static_cast<double>(demand);
    rollout_changes(g.step_start_ms / 1000);
    if (g.broadcast) return;
    // Skip the steps where nothing happens: up to the next busy bucket, the next sweep of
    // the far lists, the next rollout change or the end. Rates hold over the skipped steps.
    if (g.step % (kRing / 2) == 0) return;
    std::int64_t limit = std::min(steps, (g.step / (kRing / 2) + 1) * (kRing / 2));
    auto bound = [&](double at_s) {
      if (at_s < 0) return;
      auto at = static_cast<std::int64_t>(std::ceil(at_s * 1000 / step_ms));
      if (at > g.step) limit = std::min(limit, at);
    };
    for (const StageStep& st : model.rollout.stages) bound(st.at_s);
    if (!operator_halted) bound(model.rollout.operator_halt_at_s);
    if (g.halted && r.resumed_at_s < 0 && model.rollout.resume_after_halt_s >= 0) {
      bound(r.halted_at_s + model.rollout.resume_after_halt_s);
    }
    std::int64_t next = limit;
    for (auto& w : workers) {
      next = std::min(next, w.NextBusy(g.step, next));
      for (int i = 0; i < kResources; ++i) {
        // The step in which the resource's clock reaches the job's target.
        double ahead =
            (w.NextJob(static_cast<Resource>(i)) - g.clock_ms[i]) / (step_ms * g.rate[i]);
        if (ahead < static_cast<double>(next - g.step)) {
          next =
              std::min(next, g.step + std::max<std::int64_t>(0, static_cast<std::int64_t>(ahead)));
        }
      }
    }
    if (next > g.step) {
      const double skipped = static_cast<double>(next - g.step) * step_ms;
      serve(g.step_start_ms, skipped, g.rate[kEgress] * static_cast<double>(demand));
      for (int i = 0; i < kResources; ++i) g.clock_ms[i] += skipped * g.rate[i];
      g.step = next;
      g.step_start_ms = static_cast<double>(g.step) * step_ms;
      rollout_changes(g.step_start_ms / 1000);
    }
  };
  {
    std::atomic<bool> done{false};
    StepBarrier sync(static_cast<int>(workers.size()));
    auto completion = [&]() {
      settle();
      // Stop when no event is left and no rollout change is still to come.
      bool future = g.halted && r.resumed_at_s < 0 && model.rollout.resume_after_halt_s >= 0;
      for (const StageStep& s : model.rollout.stages) future |= s.at_s * 1000 >= g.step_start_ms;
      for (auto& w : workers) {
        for (int i = 0; i < kResources; ++i) {
          future |= w.NextJob(static_cast<Resource>(i)) < std::numeric_limits<double>::infinity();
        }
      }
      if (g.step >= steps || (queued == 0 && !future)) done = true;
    };
    std::vector<std::thread> ts;
    for (auto& w : workers) {
      ts.emplace_back([&done, &sync, &mid_step, &completion, worker = &w] {
        while (!done.load()) {
          worker->RunPhaseA();
          sync.ArriveAndWait(mid_step);
          worker->RunPhaseB();
          sync.ArriveAndWait(completion);
        }
      });
    }
    for (auto& t : ts) t.join();
  }

  // Results from the devices' final states.
  std::vector<std::uint32_t> times;
  for (const DeviceState& d : devices) {
    r.phases[static_cast<int>(d.phase)]++;
    if (d.phase == Phase::kOptedOut) continue;
    ++r.eligible;
    if (d.flags & kReachable) {
      ++r.reachable;
      if (d.phase == Phase::kProtected) times.push_back(d.protected_ms);
    }
    if (d.flags & kReach1h) {
      ++r.reachable_1h;
      if (d.phase == Phase::kProtected && d.protected_ms <= kHourMs) ++r.protected_1h;
    }
  }
  r.protected_count = times.size();
  for (const DeviceState& d : devices) {
    if (d.phase == Phase::kProtected)
      r.last_protected_s = std::max(r.last_protected_s, d.protected_ms / 1000.0);
  }
  std::sort(times.begin(), times.end());
  auto at_share = [&](double share) {
    auto k = static_cast<std::uint64_t>(std::ceil(share * static_cast<double>(r.reachable)));
    if (k == 0 || k > times.size()) return -1.0;
    return times[k - 1] / 1000.0;
  };
  r.t50_s = at_share(0.5);
  r.t90_s = at_share(0.9);
  r.t95_s = at_share(0.95);
  r.t99_s = at_share(0.99);
  r.t_last_s = at_share(1.0);
  for (double t = 0.1; t <= static_cast<double>(horizon) / 1000 * 1.0001; t *= 1.05) {
    auto n = std::upper_bound(times.begin(), times.end(), static_cast<std::uint32_t>(t * 1000)) -
             times.begin();
    r.curve.emplace_back(
        t, r.reachable ? static_cast<double>(n) / static_cast<double>(r.reachable) : 0);
  }

  // Peaks. The regular checks of online devices come from the online series; checks at
  // a session's start from its starts; wake-ups were counted by the workers.
  double regular_rate = 0;  // checks per online device per second
  if (agent.kind == AgentKind::kAptTimers) {
    regular_rate = 2.0 / 86400;
  } else {
    regular_rate = 1.0 / (agent.interval_s + agent.jitter_s / 2);
  }
  double minute_reports = 0;  // reports in the last 60 s
  for (std::size_t s = 0; s + 1 < seconds; ++s) {
    const std::size_t mnt = std::min(minutes - 1, s / 60);
    r.peak_egress_gbps = std::max(r.peak_egress_gbps, egress_bits[s] / 1e9);
    r.peak_reports_per_s = std::max(r.peak_reports_per_s, reports[s]);
    minute_reports += reports[s] - (s >= 60 ? reports[s - 60] : 0);
    r.peak_reports_per_s_minute = std::max(r.peak_reports_per_s_minute, minute_reports / 60);
    double req = online[mnt] * regular_rate + session_starts[mnt] / 60 + wakes[s];
    r.peak_requests_per_s = std::max(r.peak_requests_per_s, req);
  }
  r.peak_watchers = agent.kind == AgentKind::kWatch ? peak_online : 0;
  r.egress_cost = r.total_egress_bytes / 1e9 * model.edge.cost_per_gb;
  double need = std::max({r.peak_watchers / watchers_per_instance,
                          r.peak_reports_per_s_minute / model.costs.reports_per_s.value,
                          r.peak_requests_per_s / model.costs.requests_per_s.value});
  r.instances_needed = std::max(1, static_cast<int>(std::ceil(need)));
  r.wall_s = std::chrono::duration<double>(Clock::Real()->Monotonic() - wall0).count();
  return r;
}

}  // namespace

Simulator::Simulator(const Model& model) : model_(model), fleet_(model) {}

RunResult Simulator::Run(const AgentModel& agent) {
  devices_.assign(fleet_.size(), DeviceState{});
  Engine engine(model_, fleet_, agent, &devices_);
  return engine.Run();
}

}  // namespace qp::fleetsim
