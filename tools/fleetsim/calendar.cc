#include "fleetsim/calendar.h"

#include <algorithm>
#include <bit>

namespace qp::fleetsim {

void Calendar::Reset() {
  ring_.assign(static_cast<std::size_t>(kRing), {});
  busy_.assign(static_cast<std::size_t>(kRing / 64), 0);
  far_.clear();
}

void Calendar::Push(std::uint32_t local, std::int64_t bucket, std::int64_t now) {
  if (bucket - now < kRing) {
    const std::size_t slot = Slot(bucket);
    ring_[slot].push_back(local);
    busy_[slot / 64] |= std::uint64_t{1} << (slot % 64);
  } else {
    far_.push_back(local);
  }
}

std::int64_t Calendar::NextBusy(std::int64_t from, std::int64_t limit) const {
  std::int64_t step = from;
  while (step < limit) {
    const std::size_t slot = Slot(step);
    const std::uint64_t word = busy_[slot / 64] >> (slot % 64);
    if (word != 0) return std::min(limit, step + std::countr_zero(word));
    step += 64 - static_cast<std::int64_t>(slot % 64);
  }
  return limit;
}

std::vector<std::uint32_t> Calendar::Take(std::int64_t step) {
  std::vector<std::uint32_t> ids;
  ids.swap(ring_[Slot(step)]);
  return ids;
}

void Calendar::Release(std::int64_t step) {
  const std::size_t slot = Slot(step);
  std::vector<std::uint32_t>().swap(ring_[slot]);
  busy_[slot / 64] &= ~(std::uint64_t{1} << (slot % 64));
}

}  // namespace qp::fleetsim
