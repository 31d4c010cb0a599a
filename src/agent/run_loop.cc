#include "agent/run_loop.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace qp::agent {

RunLoop::RunLoop(Options options, CheckTarget* target, Clock* clock, std::uint64_t seed)
    : target_(target), schedule_(options.schedule, clock, seed), watch_supported_(options.watch) {}

void RunLoop::DeliverReports() {
  if (target_->PendingReports() == 0) return;
  long retry_after = 0;
  Status s = target_->FlushReports(&retry_after);
  if (!s.ok()) spdlog::warn("agent: reports not delivered yet: {}", s.error().ToString());
}

RunLoop::Duration RunLoop::Step() {
  {
    std::lock_guard<std::mutex> lock(wake_mu_);
    if (check_requested_) schedule_.CheckNow();
    check_requested_ = false;
  }
  if (schedule_.Due()) {
    Status s = target_->Check();
    long retry_after = 0;
    Status r = target_->FlushReports(&retry_after);
    if (!r.ok()) spdlog::warn("agent: reports not delivered yet: {}", r.error().ToString());
    if (!s.ok()) {
      spdlog::warn("agent: check failed ({} in a row): {}", schedule_.failures() + 1,
                   s.error().ToString());
    }
    schedule_.CheckFinished(s.ok(), std::chrono::seconds(retry_after));
  }
  target_->Rest();
  // While checks fail, a wake-up could only bring forward a check the backoff put off:
  // the loop waits for the backoff instead of watching.
  if (watch_supported_ && schedule_.failures() == 0) {
    cancel_watch_ = false;
    auto woke = target_->Watch(&cancel_watch_);
    if (woke.ok()) {
      if (*woke) schedule_.CheckNow();
      return Duration::zero();
    }
    if (woke.error().code() == ErrorCode::kUnsupported) {
      spdlog::info("agent: {}; polling instead", woke.error().ToString());
      watch_supported_ = false;
    } else {
      DeliverReports();
      return std::min<Duration>(kWatchRetryDelay, schedule_.UntilDue());
    }
  }
  DeliverReports();
  return schedule_.UntilDue();
}

void RunLoop::Run(const std::atomic<bool>& stop) {
  while (!stop) {
    Duration wait = std::min<Duration>(Step(), kPollWakeup);
    if (stop) break;
    if (wait <= Duration::zero()) continue;
    std::unique_lock<std::mutex> lock(wake_mu_);
    wake_.wait_for(lock, wait, [&] { return stop.load() || check_requested_; });
  }
}

void RunLoop::RequestCheck() {
  {
    std::lock_guard<std::mutex> lock(wake_mu_);
    check_requested_ = true;
  }
  cancel_watch_ = true;
  wake_.notify_all();
}

}  // namespace qp::agent
