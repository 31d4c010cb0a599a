#include "core/clock.h"

#include <gtest/gtest.h>

namespace qp {
namespace {

using namespace std::chrono_literals;

TEST(ClockTest, SimulatedClockMovesOnlyWhenTold) {
  WallTime start = std::chrono::sys_days{std::chrono::year{2026} / 11 / 27};
  SimulatedClock clock(start);
  EXPECT_EQ(clock.Now(), start);
  auto m0 = clock.Monotonic();
  clock.Advance(90min);
  EXPECT_EQ(clock.Now(), start + 90min);
  EXPECT_EQ(clock.Monotonic() - m0, 90min);
  clock.Set(start);  // wall time may jump back; monotonic time never does
  EXPECT_EQ(clock.Now(), start);
  EXPECT_EQ(clock.Monotonic() - m0, 90min);
}

TEST(ClockTest, RealClockIsNearSystemTime) {
  auto diff = Clock::Real()->Now() - std::chrono::system_clock::now();
  EXPECT_LT(std::chrono::abs(diff), 5s);
  auto a = Clock::Real()->Monotonic();
  EXPECT_LE(a, Clock::Real()->Monotonic());
}

}  // namespace
}  // namespace qp
