// One worker's calendar of pending device events: a bucket of device ids per step over a
// ring of 2^20 steps (12 days at 1 s), a bit per bucket that says it holds entries (to skip
// idle steps), and a far list for events beyond the ring, swept back every half turn.
// Entries are device ids only and may be stale (the device moved on): the caller checks
// each against the device's state. Not thread-safe: one worker owns it.
#pragma once

#include <cstdint>
#include <vector>

namespace qp::fleetsim {

class Calendar {
 public:
  static constexpr std::int64_t kRing = std::int64_t{1} << 20;
  // The steps at which Sweep must run: every half turn.
  static bool SweepDue(std::int64_t step) { return step % (kRing / 2) == 0; }
  // The first sweep step after `step`.
  static std::int64_t NextSweep(std::int64_t step) {
    return (step / (kRing / 2) + 1) * (kRing / 2);
  }

  // Empties it and allocates the ring.
  void Reset();
  // Files `local` under step `bucket` (>= now): in the ring within a turn of `now`, else far.
  void Push(std::uint32_t local, std::int64_t bucket, std::int64_t now);
  // The first step in [from, limit) whose bucket holds an entry; `limit` when none.
  std::int64_t NextBusy(std::int64_t from, std::int64_t limit) const;
  // Moves far entries within a turn of `now` into the ring. `bucket_of(local)` gives an
  // entry's step, or a step before `now` for a stale entry, which is dropped. Returns how
  // many were dropped.
  template <typename BucketOf>
  std::int64_t Sweep(std::int64_t now, BucketOf bucket_of) {
    std::vector<std::uint32_t> far;
    far.swap(far_);
    std::int64_t dropped = 0;
    for (std::uint32_t local : far) {
      const std::int64_t bucket = bucket_of(local);
      if (bucket < now) {
        ++dropped;
      } else {
        Push(local, bucket, now);
      }
    }
    return dropped;
  }
  // The entries of step `step`'s bucket, taken out (it may receive more meanwhile).
  std::vector<std::uint32_t> Take(std::int64_t step);
  // Frees step `step`'s bucket once its events have all run.
  void Release(std::int64_t step);

 private:
  static std::size_t Slot(std::int64_t step) {
    return static_cast<std::size_t>(step & (kRing - 1));
  }

  std::vector<std::vector<std::uint32_t>> ring_;
  std::vector<std::uint64_t> busy_;
  std::vector<std::uint32_t> far_;
};

}  // namespace qp::fleetsim
