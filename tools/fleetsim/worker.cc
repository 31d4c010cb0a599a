// The workers' side of the engine (engine.h): a range of devices, their calendar, their
// events and the updaters' behaviour (checks, apt timers, downloads, installs, reports).
#include "fleetsim/engine.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace qp::fleetsim::engine {

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
  const auto bucket = static_cast<std::int64_t>(static_cast<double>(t) / e_->step_ms);
  calendar_.Push(static_cast<std::uint32_t>(local), std::max(bucket, e_->g.step), e_->g.step);
  ++c_.queued;
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

// apt-daily-upgrade.timer: OnCalendar upgrade_hour local, RandomizedDelaySec =
// upgrade_delay_min: its firing on local day `day`.
std::int64_t Worker::AptUpgradeOn(std::uint64_t id, const Traits& tr, std::int64_t day) const {
  const AgentModel& a = e_->agent;
  double u = Uniform(e_->model.seed, id, Draw::kAptUpgrade, static_cast<std::uint64_t>(day));
  return e_->fleet.DayStart(tr, day) + static_cast<std::int64_t>(a.upgrade_hour * kHourMs) +
         static_cast<std::int64_t>(u * a.upgrade_delay_min * 60000);
}

std::int64_t Worker::NextAptUpgrade(std::uint64_t id, const Traits& tr, std::int64_t t) const {
  const std::int64_t day = e_->fleet.LocalDay(tr, t);
  for (std::int64_t dd = day; dd <= day + 1; ++dd) {
    if (std::int64_t fire = AptUpgradeOn(id, tr, dd); fire >= t) return fire;
  }
  return kNever;
}

std::int64_t Worker::PrevAptUpgrade(std::uint64_t id, const Traits& tr, std::int64_t t) const {
  const std::int64_t day = e_->fleet.LocalDay(tr, t);
  for (std::int64_t dd = day; dd >= day - 1; --dd) {
    if (std::int64_t fire = AptUpgradeOn(id, tr, dd); fire < t) return fire;
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
  calendar_.Reset();
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
  if (Calendar::SweepDue(k)) {
    c_.queued -= calendar_.Sweep(k, [&](std::uint32_t local) -> std::int64_t {
      const DeviceState& d = e_->devices[local + lo_];
      if (d.next_ms == kNoEvent || Terminal(d.phase)) return -1;
      return static_cast<std::int64_t>(d.next_ms / e_->step_ms);
    });
  }
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
  calendar_.Release(e_->g.step);
}

void Worker::RunBucket(bool release_jobs) {
  const double lo_ms = e_->g.step_start_ms, hi_ms = lo_ms + e_->step_ms;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> batch;  // (time, device)
  while (true) {
    if (release_jobs) ReleaseDue();
    std::vector<std::uint32_t> ids = calendar_.Take(e_->g.step);
    if (ids.empty()) break;
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

}  // namespace qp::fleetsim::engine
