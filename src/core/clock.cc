#include "core/clock.h"

namespace qp {
namespace {
class RealClock final : public Clock {
 public:
  WallTime Now() override { return std::chrono::system_clock::now(); }
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
