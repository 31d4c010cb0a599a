// When quietpatchd checks next. Pure timing on an injected Clock (its monotonic time) and a
// seeded random source: no I/O, no sleeping, so every rule is tested on a SimulatedClock.
//
//   - at start, a check is due at once;
//   - after a check that worked: after `interval` plus a uniform jitter in [0, jitter]
//     (devices that started together spread out);
//   - after failures: exponential backoff, kFirstBackoff * 2^(n-1) for the n-th failure in a
//     row, at most max_backoff, no sooner than the server's Retry-After, and never later
//     than a regular check would be (a server cannot silence a device with its hint);
//   - a watch wake-up (newer metadata published) or a person's request makes a check due
//     at once.
// Not thread-safe: the run loop owns it.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

#include "core/clock.h"

namespace qp::agent {

class CheckSchedule {
 public:
  using Duration = std::chrono::steady_clock::duration;
  using TimePoint = std::chrono::steady_clock::time_point;

  // The delay after the first failure; it doubles with each failure in a row.
  static constexpr std::chrono::seconds kFirstBackoff{10};

  struct Options {
    std::chrono::seconds interval{3600};
    std::chrono::seconds jitter{300};
    std::chrono::seconds max_backoff{6 * 3600};
  };

  CheckSchedule(Options options, Clock* clock, std::uint64_t seed);

  // Whether a check is due now.
  bool Due();
  // How long until the next check is due (zero when due).
  Duration UntilDue();
  TimePoint next() const { return next_; }
  int failures() const { return failures_; }

  // A check finished: schedules the next one. `retry_after` is the server's hint (zero when
  // none); it only delays a retry after a failure, up to interval + jitter.
  void CheckFinished(bool ok, std::chrono::seconds retry_after = std::chrono::seconds(0));
  // Newer metadata was published (watch) or a person asked: a check is due now.
  void CheckNow();

 private:
  Options options_;
  Clock* clock_;
  std::mt19937_64 rng_;
  TimePoint next_;
  int failures_ = 0;
};

}  // namespace qp::agent
