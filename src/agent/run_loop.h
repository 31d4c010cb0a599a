// The daemon's loop: when to check, when to watch, when to retry reports. All timing is
// on an injected Clock and a CheckSchedule; Step() does one turn and returns how long to
// wait, so tests drive the loop on a SimulatedClock without sleeping.
//
//   - a check runs when the schedule says it is due (at start, after the interval plus
//     jitter, after a backoff following failures, or at once when a person asks);
//   - between checks the loop long-polls the server's watch endpoint; a wake-up (newer
//     metadata is published) makes a check due at once. The wake-up is unsigned, so it
//     never overrides a backoff: while checks fail the loop does not watch, it waits;
//   - an unreachable watch is retried after kWatchRetryDelay; a server without one makes
//     the loop poll;
//   - undelivered reports are retried on every turn;
//   - between a turn's work and its watch or wait, the target rests (CheckTarget::Rest).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "agent/check_schedule.h"
#include "core/clock.h"
#include "core/result.h"

namespace qp::agent {

// What the loop drives: the agent, or a fake in tests.
class CheckTarget {
 public:
  virtual ~CheckTarget() = default;
  // One check of the repository and what follows from it.
  virtual Status Check() = 0;
  // Delivers queued reports; the server's retry hint (seconds) when it refused.
  virtual Status FlushReports(long* retry_after) = 0;
  virtual std::size_t PendingReports() = 0;
  // Long-polls for newer metadata: true when it is published, false at the timeout;
  // kUnsupported when the server has no watch endpoint; kIo otherwise (or when `cancel`
  // was set).
  virtual Result<bool> Watch(const std::atomic<bool>* cancel) = 0;
  // At the end of a turn's work, before the loop watches or waits: the target may give
  // back memory its work used.
  virtual void Rest() {}
};

class RunLoop {
 public:
  using Duration = CheckSchedule::Duration;

  // How long the loop waits before retrying a watch the server did not answer.
  static constexpr std::chrono::seconds kWatchRetryDelay{2};
  // The longest Run() waits at a time, so that a stop flag set by a signal handler is seen.
  static constexpr std::chrono::seconds kPollWakeup{5};

  struct Options {
    CheckSchedule::Options schedule;
    bool watch = true;  // the server may offer a watch endpoint
  };

  RunLoop(Options options, CheckTarget* target, Clock* clock, std::uint64_t seed);

  // One turn; returns how long to wait before the next one.
  Duration Step();
  // Turns until `stop`, waiting between them (woken early by RequestCheck()).
  void Run(const std::atomic<bool>& stop);
  // A person asked: a check is due at once (a watch in progress is cancelled). Thread-safe.
  void RequestCheck();

  const CheckSchedule& schedule() const { return schedule_; }
  bool watching() const { return watch_supported_; }

 private:
  void DeliverReports();

  CheckTarget* target_;
  CheckSchedule schedule_;
  bool watch_supported_;
  std::mutex wake_mu_;
  std::condition_variable wake_;
  bool check_requested_ = false;
  std::atomic<bool> cancel_watch_{false};
};

}  // namespace qp::agent
