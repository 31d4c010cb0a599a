// The run loop's timing on a simulated clock: checks, watch wake-ups, backoff, retries and
// polling, driven turn by turn. Milliseconds, no sleeping, no sockets.
#include "agent/run_loop.h"

#include <gtest/gtest.h>

#include <deque>

namespace qp::agent {
namespace {

using std::chrono::seconds;

// A device's view of the server: checks succeed or fail as scripted, and a watch answers
// at once when newer metadata is published, or after `watch_timeout` of simulated time.
class FakeTarget : public CheckTarget {
 public:
  explicit FakeTarget(SimulatedClock* clock) : clock_(clock) {}

  Status Check() override {
    check_times.push_back(clock_->Monotonic());
    bool ok = check_ok;
    if (!scripted_checks.empty()) {
      ok = scripted_checks.front();
      scripted_checks.pop_front();
    }
    if (ok) news = false;  // the device has the newest metadata now
    return ok ? OkStatus() : Status(Error(ErrorCode::kVerificationFailed, "timestamp expired"));
  }
  Status FlushReports(long* retry_after) override {
    *retry_after = 0;
    ++flushes;
    if (!reports_ok) return Error(ErrorCode::kIo, "server unreachable");
    pending = 0;
    return OkStatus();
  }
  std::size_t PendingReports() override { return pending; }
  void Rest() override { rested_at.emplace_back(check_times.size(), watches); }
  Result<bool> Watch(const std::atomic<bool>*) override {
    ++watches;
    if (!watch_error.ok()) return watch_error.error();
    if (news) return true;
    clock_->Advance(watch_timeout);
    return false;
  }

  SimulatedClock* clock_;
  bool check_ok = true;
  std::deque<bool> scripted_checks;
  bool news = false;  // the server has newer metadata than the device
  bool reports_ok = true;
  std::size_t pending = 0;
  Status watch_error = OkStatus();
  seconds watch_timeout{60};
  std::vector<std::chrono::steady_clock::time_point> check_times;
  int watches = 0;
  int flushes = 0;
  std::vector<std::pair<std::size_t, int>> rested_at;  // (checks, watches) at each rest
};

class RunLoopTest : public ::testing::Test {
 protected:
  RunLoop Make(bool watch = true) {
    RunLoop::Options o;
    o.schedule = {seconds(3600), seconds(0), seconds(6 * 3600)};
    o.watch = watch;
    return RunLoop(o, &target_, &clock_, 1);
  }
  // Turns of the loop until `span` of simulated time has passed, waiting what each turn
  // asks for (as Run() would).
  void RunFor(RunLoop& loop, seconds span) {
    auto end = clock_.Monotonic() + span;
    for (int turns = 0; clock_.Monotonic() < end; ++turns) {
      ASSERT_LT(turns, 100000) << "the loop does not advance";
      auto wait = loop.Step();
      clock_.Advance(wait);
    }
  }
  seconds Since(std::chrono::steady_clock::time_point t) {
    return std::chrono::duration_cast<seconds>(t - start_);
  }

  SimulatedClock clock_{std::chrono::system_clock::from_time_t(1800000000)};
  std::chrono::steady_clock::time_point start_ = clock_.Monotonic();
  FakeTarget target_{&clock_};
};

TEST_F(RunLoopTest, ChecksAtStartThenOnEveryWakeUpAndOtherwiseAtTheInterval) {
  RunLoop loop = Make();
  RunFor(loop, seconds(600));
  ASSERT_EQ(target_.check_times.size(), 1u);
  EXPECT_EQ(Since(target_.check_times[0]), seconds(0));
  EXPECT_GE(target_.watches, 9);  // long-polling meanwhile, one per timeout

  target_.news = true;  // a new improvement is published
  EXPECT_EQ(loop.Step(), RunLoop::Duration::zero());
  auto woken = clock_.Monotonic();
  loop.Step();
  ASSERT_EQ(target_.check_times.size(), 2u);
  EXPECT_EQ(target_.check_times[1], woken) << "the wake-up is acted on at once";

  // Nothing published for a while: the regular interval still brings a check.
  RunFor(loop, seconds(3700));
  ASSERT_EQ(target_.check_times.size(), 3u);
  auto gap = std::chrono::duration_cast<seconds>(target_.check_times[2] - woken);
  EXPECT_GE(gap, seconds(3600));
  EXPECT_LE(gap, seconds(3660));  // within one watch timeout of the interval
}

TEST_F(RunLoopTest, TheTargetRestsAfterEachTurnsWorkBeforeItWatches) {
  RunLoop loop = Make();
  loop.Step();  // the first check, then its rest, then a watch
  ASSERT_EQ(target_.rested_at.size(), 1u);
  EXPECT_EQ(target_.rested_at[0], (std::pair<std::size_t, int>{1, 0}));
  EXPECT_EQ(target_.watches, 1);
  loop.Step();  // a watch that timed out: no check, still a rest before watching again
  ASSERT_EQ(target_.rested_at.size(), 2u);
  EXPECT_EQ(target_.rested_at[1], (std::pair<std::size_t, int>{1, 1}));
}

TEST_F(RunLoopTest, AWakeUpDuringBackoffDoesNotBringTheCheckForward) {
  // The device cannot accept the new timestamp (its clock is wrong, or someone tampers
  // with plain HTTP): every check fails, and the server keeps saying there is news.
  target_.check_ok = false;
  target_.news = true;
  RunLoop loop = Make();
  RunFor(loop, seconds(75));
  // Backoff 10 s, 20 s, 40 s: checks at 0, 10, 30 and 70 s, however often the server
  // would have woken the device.
  ASSERT_EQ(target_.check_times.size(), 4u);
  EXPECT_EQ(Since(target_.check_times[1]), seconds(10));
  EXPECT_EQ(Since(target_.check_times[2]), seconds(30));
  EXPECT_EQ(Since(target_.check_times[3]), seconds(70));
  EXPECT_EQ(target_.watches, 0) << "no watching while checks fail";

  // Once a check works, the loop watches again and acts on wake-ups.
  target_.check_ok = true;
  RunFor(loop, seconds(100));
  EXPECT_EQ(target_.check_times.size(), 5u);
  EXPECT_GT(target_.watches, 0);
}

TEST_F(RunLoopTest, APersonsRequestChecksAtOnceEvenDuringBackoff) {
  target_.check_ok = false;
  RunLoop loop = Make();
  loop.Step();  // fails: the next check is 10 s away
  ASSERT_EQ(target_.check_times.size(), 1u);
  clock_.Advance(seconds(1));
  loop.RequestCheck();
  loop.Step();
  ASSERT_EQ(target_.check_times.size(), 2u);
  EXPECT_EQ(Since(target_.check_times[1]), seconds(1));
}

TEST_F(RunLoopTest, AnUnreachableWatchIsRetriedAfterADelayWithTheReports) {
  target_.watch_error = Status(Error(ErrorCode::kIo, "connection refused"));
  RunLoop loop = Make();
  auto wait = loop.Step();
  EXPECT_EQ(wait, RunLoop::kWatchRetryDelay);
  EXPECT_TRUE(loop.watching()) << "an outage is not a server without a watch endpoint";
  target_.pending = 3;
  target_.reports_ok = false;
  int flushes = target_.flushes;
  clock_.Advance(wait);
  loop.Step();
  EXPECT_EQ(target_.flushes, flushes + 1) << "undelivered reports are retried each turn";
  EXPECT_EQ(target_.check_times.size(), 1u);
}

TEST_F(RunLoopTest, AServerWithoutAWatchEndpointIsPolledAtTheInterval) {
  target_.watch_error = Status(Error(ErrorCode::kUnsupported, "no watch endpoint"));
  RunLoop loop = Make();
  auto wait = loop.Step();
  EXPECT_FALSE(loop.watching());
  EXPECT_EQ(wait, seconds(3600));
  RunFor(loop, seconds(3 * 3600 + 1));
  EXPECT_EQ(target_.check_times.size(), 4u);
  EXPECT_EQ(target_.watches, 1);
}

TEST_F(RunLoopTest, RetriesAfterAFailureThenReturnsToTheInterval) {
  target_.scripted_checks = {false, false, true};
  RunLoop loop = Make(/*watch=*/false);
  RunFor(loop, seconds(3600 + 31));
  ASSERT_EQ(target_.check_times.size(), 4u);
  EXPECT_EQ(Since(target_.check_times[1]), seconds(10));
  EXPECT_EQ(Since(target_.check_times[2]), seconds(30));
  EXPECT_EQ(Since(target_.check_times[3]), seconds(30 + 3600));
}

}  // namespace
}  // namespace qp::agent
