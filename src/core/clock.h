// Injected time. Nothing in quietpatch reads the wall clock except through a Clock, so that
// tests drive polling, backoff, expiry and timeouts with a SimulatedClock and no sleeps.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>

namespace qp {

using WallTime = std::chrono::system_clock::time_point;

// Whole seconds since the Unix epoch, as files and the wire carry times.
inline std::int64_t UnixSeconds(WallTime t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time (UTC), for expiry dates and report timestamps.
  virtual WallTime Now() = 0;
  // Monotonic time, for intervals and timeouts.
  virtual std::chrono::steady_clock::time_point Monotonic() = 0;

  // The process-wide real clock (reads the time through the C library, so faketime works).
  static Clock* Real();
};

// A clock that moves only when told. Thread-safe.
class SimulatedClock final : public Clock {
 public:
  explicit SimulatedClock(WallTime start) : now_(start) {}
  WallTime Now() override;
  std::chrono::steady_clock::time_point Monotonic() override;
  void Advance(std::chrono::nanoseconds d);
  void Set(WallTime t);

 private:
  std::mutex mu_;
  WallTime now_;
  std::chrono::nanoseconds elapsed_{0};
};

}  // namespace qp
