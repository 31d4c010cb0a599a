// The simulated devices' traits and online sessions, as pure functions of (seed, device id):
// a counter-based hash gives every draw, so a device's whole history (its time zone, base,
// bandwidth, each day's session) is recomputed on demand and never stored. That is what
// keeps the simulator's state at 16 bytes a device.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "fleetsim/model.h"

namespace qp::fleetsim {

inline constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();
inline constexpr std::int64_t kHourMs = 3'600'000;
inline constexpr std::int64_t kDayMs = 24 * kHourMs;

// splitmix64's finalizer: a bijective 64-bit mix.
inline std::uint64_t Mix(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// What a draw is for: every kind of draw has its own stream.
enum class Draw : std::uint64_t {
  kClass = 1,
  kZone,
  kBase,
  kBandwidth,
  kBucket,
  kSessionOn,
  kSessionStart,
  kSessionLength,
  kPollPhase,
  kPollPhase2,
  kJitter,
  kConnect,
  kWake,
  kDownloadFails,
  kRollsBack,
  kAptUpdate,
  kAptUpgrade,
};

// A uniform number in [0, 1) for (seed, device, kind of draw, n).
inline double Uniform(std::uint64_t seed, std::uint64_t id, Draw what, std::uint64_t n = 0) {
  std::uint64_t h = Mix(seed ^ Mix(id ^ Mix(static_cast<std::uint64_t>(what) ^ Mix(n))));
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}

// The standard normal quantile of u in (0, 1), from a table (4096 steps, linear between):
// cheap enough for a draw per event.
double NormalQuantile(double u);

struct Traits {
  std::uint8_t online_class = 0;
  std::uint8_t base = 0;
  bool auto_install = true;
  bool failing = false;      // in the injected failure's device class
  std::int64_t zone_ms = 0;  // UTC offset
  std::uint32_t bucket = 0;  // rollout bucket, 0..9999 (as quietpatch's cohort)
};

class Fleet {
 public:
  explicit Fleet(const Model& model);

  std::uint64_t size() const { return devices_; }
  Traits TraitsOf(std::uint64_t id) const;
  // The device's download bandwidth, bits per second (log-normal).
  double Bandwidth(std::uint64_t id) const;

  // Times are milliseconds from publication (negative before it).
  bool OnlineAt(std::uint64_t id, const Traits& t, std::int64_t ms) const;
  // The first time >= ms the device is online; kNever when not before the horizon.
  std::int64_t NextOnline(std::uint64_t id, const Traits& t, std::int64_t ms) const;
  // For a device online at ms: when that session ends (kNever for always-online devices).
  std::int64_t SessionEnd(std::uint64_t id, const Traits& t, std::int64_t ms) const;

  // The sessions of one local day that are online at some point of [from, to): calls
  // f(start, end) with times from publication.
  template <typename F>
  void ForEachSession(std::uint64_t id, const Traits& t, std::int64_t from, std::int64_t to,
                      F f) const {
    const OnlineClass& c = model_.population.classes[t.online_class];
    if (c.kind == OnlineKind::kAlways) {
      f(from, to);
      return;
    }
    for (std::int64_t day = LocalDay(t, from) - 1, last = LocalDay(t, to); day <= last; ++day) {
      std::int64_t s, e;
      if (Session(id, c, t, day, &s, &e) && e > from && s < to) f(s, e);
    }
  }

  const Model& model() const { return model_; }
  std::int64_t horizon_ms() const { return horizon_ms_; }
  // The number of the local day that holds `ms` (days count from before publication).
  std::int64_t LocalDay(const Traits& t, std::int64_t ms) const;
  // ms from publication of local midnight starting day number `day`.
  std::int64_t DayStart(const Traits& t, std::int64_t day) const {
    return day * kDayMs - origin_ms_ - t.zone_ms;
  }

 private:
  // The session of local day `day`, if it has one, in ms from publication.
  bool Session(std::uint64_t id, const OnlineClass& c, const Traits& t, std::int64_t day,
               std::int64_t* start, std::int64_t* end) const;

  const Model& model_;
  std::uint64_t devices_;
  std::uint64_t seed_;
  std::int64_t horizon_ms_;
  std::int64_t origin_ms_;  // local time of publication at UTC, plus whole days
  std::vector<double> class_cdf_, zone_cdf_, base_cdf_;
  std::uint64_t opted_out_, failing_;  // exact counts, spread by a permutation of ids
};

}  // namespace qp::fleetsim
