// The daemon's timing rules on a simulated clock: milliseconds, no sleeping.
#include "agent/check_schedule.h"

#include <gtest/gtest.h>

namespace qp::agent {
namespace {

using std::chrono::seconds;

class CheckScheduleTest : public ::testing::Test {
 protected:
  CheckSchedule Make(std::uint64_t seed = 1) { return CheckSchedule(options_, &clock_, seed); }
  seconds Delay(CheckSchedule& s) {
    return std::chrono::duration_cast<seconds>(s.next() - clock_.Monotonic());
  }
  SimulatedClock clock_{std::chrono::system_clock::from_time_t(1800000000)};
  CheckSchedule::Options options_{seconds(3600), seconds(300), seconds(6 * 3600)};
};

TEST_F(CheckScheduleTest, ChecksAtStartThenAfterTheIntervalPlusJitter) {
  CheckSchedule s = Make();
  EXPECT_TRUE(s.Due());
  s.CheckFinished(true);
  EXPECT_FALSE(s.Due());
  seconds d = Delay(s);
  EXPECT_GE(d, seconds(3600));
  EXPECT_LE(d, seconds(3900));
  clock_.Advance(d - seconds(1));
  EXPECT_FALSE(s.Due());
  EXPECT_EQ(s.UntilDue(), seconds(1));
  clock_.Advance(seconds(1));
  EXPECT_TRUE(s.Due());
  EXPECT_EQ(s.UntilDue(), CheckSchedule::Duration::zero());
}

TEST_F(CheckScheduleTest, JitterStaysInBoundsAndSpreadsDevices) {
  seconds lo = seconds::max(), hi = seconds::min();
  for (std::uint64_t device = 0; device < 2000; ++device) {
    CheckSchedule s = Make(device);
    s.CheckFinished(true);
    seconds d = Delay(s);
    ASSERT_GE(d, seconds(3600));
    ASSERT_LE(d, seconds(3900));
    lo = std::min(lo, d);
    hi = std::max(hi, d);
  }
  // 2000 devices cover nearly the whole window: they do not check in lockstep.
  EXPECT_LE(lo, seconds(3610));
  EXPECT_GE(hi, seconds(3890));
}

TEST_F(CheckScheduleTest, FailuresBackOffExponentiallyUpToTheRegularInterval) {
  options_.jitter = seconds(0);
  CheckSchedule s = Make();
  const seconds expected[] = {seconds(10),   seconds(20),   seconds(40),  seconds(80),
                              seconds(160),  seconds(320),  seconds(640), seconds(1280),
                              seconds(2560), seconds(3600), seconds(3600)};
  for (seconds want : expected) {
    s.CheckFinished(false);
    EXPECT_EQ(Delay(s), want) << "after " << s.failures() << " failures";
    clock_.Advance(Delay(s));
    ASSERT_TRUE(s.Due());
  }
  // Many more failures: the shift is bounded, the delay stays at the cap.
  for (int i = 0; i < 100; ++i) s.CheckFinished(false);
  EXPECT_EQ(Delay(s), seconds(3600));
}

TEST_F(CheckScheduleTest, MaxBackoffCapsTheBackoff) {
  options_.max_backoff = seconds(60);
  CheckSchedule s = Make();
  for (int i = 0; i < 10; ++i) s.CheckFinished(false);
  EXPECT_EQ(Delay(s), seconds(60));
}

TEST_F(CheckScheduleTest, ASuccessAfterFailuresReturnsToTheInterval) {
  CheckSchedule s = Make();
  for (int i = 0; i < 5; ++i) s.CheckFinished(false);
  EXPECT_EQ(s.failures(), 5);
  s.CheckFinished(true);
  EXPECT_EQ(s.failures(), 0);
  EXPECT_GE(Delay(s), seconds(3600));
  s.CheckFinished(false);
  EXPECT_EQ(Delay(s), CheckSchedule::kFirstBackoff);  // the backoff starts again from 10 s
}

TEST_F(CheckScheduleTest, RetryAfterDelaysARetryButCannotSilenceTheDevice) {
  CheckSchedule s = Make();
  s.CheckFinished(false, seconds(120));
  EXPECT_EQ(Delay(s), seconds(120));  // later than the 10 s backoff
  s.CheckFinished(false, seconds(1));
  EXPECT_EQ(Delay(s), seconds(20));  // a short hint does not shorten the backoff
  s.CheckFinished(false, seconds(86400 * 365));
  EXPECT_LE(Delay(s), seconds(3900));  // never past a regular check
  s.CheckFinished(true, seconds(86400));
  EXPECT_LE(Delay(s), seconds(3900));  // a hint does not delay a regular check either
}

TEST_F(CheckScheduleTest, AWakeUpOrARequestMakesACheckDueAtOnce) {
  CheckSchedule s = Make();
  s.CheckFinished(true);
  clock_.Advance(seconds(5));
  ASSERT_FALSE(s.Due());
  s.CheckNow();
  EXPECT_TRUE(s.Due());
  s.CheckFinished(false);
  ASSERT_FALSE(s.Due());
  s.CheckNow();
  EXPECT_TRUE(s.Due());
}

TEST_F(CheckScheduleTest, TheSameSeedGivesTheSameSchedule) {
  CheckSchedule a = Make(42), b = Make(42);
  for (int i = 0; i < 20; ++i) {
    a.CheckFinished(true);
    b.CheckFinished(true);
    EXPECT_EQ(a.next(), b.next());
  }
}

}  // namespace
}  // namespace qp::agent
