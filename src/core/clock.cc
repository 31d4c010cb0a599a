#include "core/clock.h"

#include <time.h>

namespace qp {
namespace {
class RealClock final : public Clock {
 public:
  // Through the C library's clock_gettime, so that LD_PRELOAD tools such as faketime
  // (which conformance suites use to test expiry) move this clock.
  WallTime Now() override {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    return WallTime(std::chrono::duration_cast<WallTime::duration>(
        std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
  }
  std::chrono::steady_clock::time_point Monotonic() override {
    return std::chrono::steady_clock::now();
  }
};
}  // namespace

Clock* Clock::Real() {
  static RealClock* clock = new RealClock();
  return clock;
}

WallTime SimulatedClock::Now() {
  std::lock_guard<std::mutex> lock(mu_);
  return now_;
}

std::chrono::steady_clock::time_point SimulatedClock::Monotonic() {
  std::lock_guard<std::mutex> lock(mu_);
  return std::chrono::steady_clock::time_point(elapsed_);
}

void SimulatedClock::Advance(std::chrono::nanoseconds d) {
  std::lock_guard<std::mutex> lock(mu_);
  now_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
  elapsed_ += d;
}

void SimulatedClock::Set(WallTime t) {
  std::lock_guard<std::mutex> lock(mu_);
  now_ = t;
}

}  // namespace qp
