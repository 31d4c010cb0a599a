// The engine's side (engine.h): the steps, the couplings settled between them (shared
// resources' shares, halts, resumes, stage changes) and the results of a run.
#include "fleetsim/simulator.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <limits>
#include <thread>
#include <utility>

#include "core/clock.h"
#include "fleetsim/engine.h"

namespace qp::fleetsim {
namespace engine {
namespace {

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

}  // namespace

// The stage's percent at t_s.
static double StagePercent(const Rollout& r, double t_s) {
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
    if (Calendar::SweepDue(g.step)) return;
    std::int64_t limit = std::min(steps, Calendar::NextSweep(g.step));
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

}  // namespace engine

Simulator::Simulator(const Model& model) : model_(model), fleet_(model) {}

RunResult Simulator::Run(const AgentModel& agent) {
  devices_.assign(fleet_.size(), DeviceState{});
  engine::Engine engine(model_, fleet_, agent, &devices_);
  return engine.Run();
}

}  // namespace qp::fleetsim