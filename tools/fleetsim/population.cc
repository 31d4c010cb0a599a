#include "fleetsim/population.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace qp::fleetsim {
namespace {

std::vector<double> Cdf(const std::vector<double>& shares) {
  std::vector<double> cdf;
  double sum = 0;
  for (double s : shares) cdf.push_back(sum += s);
  if (!cdf.empty()) cdf.back() = 1.0;  // rounding never leaves a draw past the end
  return cdf;
}

std::uint8_t Pick(const std::vector<double>& cdf, double u) {
  return static_cast<std::uint8_t>(std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin());
}

// A prime, coprime with any fleet size below it: id -> id * kSpread mod N is a permutation
// that spreads the opted-out and failing devices evenly over the ids, with exact counts.
constexpr std::uint64_t kSpread = 2'654'435'761ULL;

}  // namespace

namespace {

// The standard normal quantile by bisection on erfc (60 halvings: to double precision).
double ExactQuantile(double p) {
  double lo = -9, hi = 9;
  for (int k = 0; k < 60; ++k) {
    double mid = (lo + hi) / 2;
    (0.5 * std::erfc(-mid / std::numbers::sqrt2) < p ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

}  // namespace

double NormalQuantile(double u) {
  // Between 1/kSteps and 1 - 1/kSteps, a table at i / kSteps and straight lines between;
  // in the two outer cells, where the quantile bends too fast for a line, the exact value.
  constexpr int kSteps = 4096;
  static const std::vector<double> kTable = [] {
    std::vector<double> t(kSteps + 1);
    for (int i = 1; i < kSteps; ++i) {
      t[static_cast<std::size_t>(i)] = ExactQuantile(static_cast<double>(i) / kSteps);
    }
    return t;
  }();
  const double x = u * kSteps;
  if (x < 1 || x >= kSteps - 1) return ExactQuantile(std::clamp(u, 1e-300, 1 - 1e-16));
  const auto i = static_cast<int>(x);
  const double f = x - i;
  return kTable[static_cast<std::size_t>(i)] * (1 - f) +
         kTable[static_cast<std::size_t>(i) + 1] * f;
}

Fleet::Fleet(const Model& model)
    : model_(model),
      devices_(model.population.devices),
      seed_(model.seed),
      horizon_ms_(static_cast<std::int64_t>(model.horizon_h * kHourMs)),
      origin_ms_(static_cast<std::int64_t>(model.publication_utc_hour * kHourMs) + 8 * kDayMs) {
  std::vector<double> shares;
  for (const auto& c : model.population.classes) shares.push_back(c.share);
  class_cdf_ = Cdf(shares);
  shares.clear();
  for (const auto& z : model.population.zones) shares.push_back(z.share);
  zone_cdf_ = Cdf(shares);
  shares.clear();
  for (const auto& b : model.population.bases) shares.push_back(b.share);
  base_cdf_ = Cdf(shares);
  opted_out_ = static_cast<std::uint64_t>(
      std::llround(static_cast<double>(devices_) * (1 - model.population.auto_install_share)));
  failing_ = static_cast<std::uint64_t>(
      std::llround(static_cast<double>(devices_) * model.failure.class_share));
}

Traits Fleet::TraitsOf(std::uint64_t id) const {
  Traits t;
  t.online_class = Pick(class_cdf_, Uniform(seed_, id, Draw::kClass));
  t.base = Pick(base_cdf_, Uniform(seed_, id, Draw::kBase));
  const auto& zones = model_.population.zones;
  t.zone_ms = static_cast<std::int64_t>(
      zones[Pick(zone_cdf_, Uniform(seed_, id, Draw::kZone))].offset_hours * kHourMs);
  const std::uint64_t rank =
      static_cast<std::uint64_t>((static_cast<unsigned __int128>(id) * kSpread) % devices_);
  t.auto_install = rank >= opted_out_;
  t.failing = rank >= opted_out_ && rank < opted_out_ + failing_;
  t.bucket = static_cast<std::uint32_t>(Uniform(seed_, id, Draw::kBucket) * 10000);
  return t;
}

double Fleet::Bandwidth(std::uint64_t id) const {
  const Network& n = model_.network;
  return n.median_mbps * 1e6 *
         std::exp(n.sigma * NormalQuantile(Uniform(seed_, id, Draw::kBandwidth)));
}

std::int64_t Fleet::LocalDay(const Traits& t, std::int64_t ms) const {
  std::int64_t local = ms + origin_ms_ + t.zone_ms;
  return local >= 0 ? local / kDayMs : (local - kDayMs + 1) / kDayMs;
}

bool Fleet::Session(std::uint64_t id, const OnlineClass& c, const Traits& t, std::int64_t day,
                    std::int64_t* start, std::int64_t* end) const {
  const auto n = static_cast<std::uint64_t>(day);
  double chance = c.kind == OnlineKind::kRare ? 1.0 / c.mean_days_between : c.day_probability;
  if (Uniform(seed_, id, Draw::kSessionOn, n) >= chance) return false;
  double hour;
  if (c.kind == OnlineKind::kDiurnal) {
    hour = c.start_hour_mean +
           c.start_hour_sd * NormalQuantile(Uniform(seed_, id, Draw::kSessionStart, n));
    hour = std::clamp(hour, 0.0, 23.99);
  } else {
    hour = 24 * Uniform(seed_, id, Draw::kSessionStart, n);
  }
  double hours =
      c.hours_min + (c.hours_max - c.hours_min) * Uniform(seed_, id, Draw::kSessionLength, n);
  *start = day * kDayMs - origin_ms_ - t.zone_ms + static_cast<std::int64_t>(hour * kHourMs);
  *end = *start + static_cast<std::int64_t>(hours * kHourMs);
  return true;
}

bool Fleet::OnlineAt(std::uint64_t id, const Traits& t, std::int64_t ms) const {
  const OnlineClass& c = model_.population.classes[t.online_class];
  if (c.kind == OnlineKind::kAlways) return true;
  std::int64_t day = LocalDay(t, ms);
  for (std::int64_t d : {day, day - 1}) {
    std::int64_t s, e;
    if (Session(id, c, t, d, &s, &e) && s <= ms && ms < e) return true;
  }
  return false;
}

std::int64_t Fleet::NextOnline(std::uint64_t id, const Traits& t, std::int64_t ms) const {
  const OnlineClass& c = model_.population.classes[t.online_class];
  if (c.kind == OnlineKind::kAlways || OnlineAt(id, t, ms)) return ms;
  for (std::int64_t day = LocalDay(t, ms), last = LocalDay(t, horizon_ms_); day <= last; ++day) {
    std::int64_t s, e;
    if (Session(id, c, t, day, &s, &e) && s >= ms) return s < horizon_ms_ ? s : kNever;
  }
  return kNever;
}

std::int64_t Fleet::SessionEnd(std::uint64_t id, const Traits& t, std::int64_t ms) const {
  const OnlineClass& c = model_.population.classes[t.online_class];
  if (c.kind == OnlineKind::kAlways) return kNever;
  std::int64_t day = LocalDay(t, ms), best = ms;
  for (std::int64_t d : {day, day - 1}) {
    std::int64_t s, e;
    if (Session(id, c, t, d, &s, &e) && s <= ms && ms < e) best = std::max(best, e);
  }
  return best;
}

}  // namespace qp::fleetsim
