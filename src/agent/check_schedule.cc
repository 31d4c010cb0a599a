#include "agent/check_schedule.h"

#include <algorithm>

namespace qp::agent {

CheckSchedule::CheckSchedule(Options options, Clock* clock, std::uint64_t seed)
    : options_(options), clock_(clock), rng_(seed), next_(clock->Monotonic()) {}

bool CheckSchedule::Due() { return clock_->Monotonic() >= next_; }

CheckSchedule::Duration CheckSchedule::UntilDue() {
  return std::max<Duration>(next_ - clock_->Monotonic(), Duration::zero());
}

void CheckSchedule::CheckFinished(bool ok, std::chrono::seconds retry_after) {
  using std::chrono::seconds;
  const seconds regular_max = options_.interval + options_.jitter;
  seconds delay;
  if (ok) {
    failures_ = 0;
    std::uniform_int_distribution<std::int64_t> jitter(0, options_.jitter.count());
    delay = options_.interval + seconds(jitter(rng_));
  } else {
    ++failures_;
    // 10 s, 20 s, 40 s, ...: the shift is bounded so that it cannot overflow.
    seconds backoff = kFirstBackoff * (std::int64_t{1} << std::min(failures_ - 1, 30));
    delay = std::max(std::min(backoff, options_.max_backoff), retry_after);
    delay = std::min(delay, regular_max);
  }
  next_ = clock_->Monotonic() + delay;
}

void CheckSchedule::CheckNow() { next_ = clock_->Monotonic(); }

}  // namespace qp::agent
