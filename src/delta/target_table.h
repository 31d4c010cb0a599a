// The x86 predictor's learned targets: old target -> new target (mod 2^32) for the
// references the blocks mispredicted. Open addressing in a fixed array sized from the old
// file; once three quarters full it takes no new keys (both sides fill it identically, so
// they stop identically). docs/patch-format.md ("Transform 2") gives the exact semantics.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace qp::delta {

class TargetTable {
 public:
  explicit TargetTable(std::uint64_t old_size) {
    const std::size_t cap = Capacity(old_size);
    slots_.assign(cap, 0);
    used_bits_.assign(cap / 64, 0);
    mask_ = cap - 1;
    limit_ = cap / 4 * 3;
  }
  // Keys are 1 + (target << 1 | space), so 0 marks an empty slot; false if unrepresentable.
  static bool Key(std::int64_t target, bool rip, std::uint32_t* key) {
    if (target < 0 || target >= (std::int64_t{1} << 31) - 1) return false;
    *key = static_cast<std::uint32_t>((target << 1 | (rip ? 1 : 0)) + 1);
    return true;
  }
  bool Find(std::uint32_t key, std::uint32_t* value) const {
    const std::size_t home = Hash(key);
    // Most keys were never learnt and their home slot is empty: the bits say so from a
    // table small enough to stay in the first-level cache.
    if ((used_bits_[home / 64] >> (home % 64) & 1) == 0) return false;
    for (std::size_t s = home;; s = (s + 1) & mask_) {
      std::uint32_t k = static_cast<std::uint32_t>(slots_[s] >> 32);
      if (k == 0) return false;
      if (k == key) {
        *value = static_cast<std::uint32_t>(slots_[s]);
        return true;
      }
    }
  }
  void Put(std::uint32_t key, std::uint32_t value) {
    for (std::size_t s = Hash(key);; s = (s + 1) & mask_) {
      std::uint32_t k = static_cast<std::uint32_t>(slots_[s] >> 32);
      if (k == key || (k == 0 && used_ < limit_)) {
        if (k == 0) ++used_;
        slots_[s] = static_cast<std::uint64_t>(key) << 32 | value;
        used_bits_[s / 64] |= std::uint64_t{1} << (s % 64);
        return;
      }
      if (k == 0) return;  // full: new keys are not learned
    }
  }

  // The table's size for an old file: old_size / 128 slots, a power of two from 4,096 to 2^19.
  static std::size_t Capacity(std::uint64_t old_size) {
    std::size_t cap = 4096;
    while (cap < (1u << 19) && cap < old_size / 128) cap <<= 1;
    return cap;
  }
  static std::uint64_t Bytes(std::uint64_t old_size) {
    return Capacity(old_size) * 8 + Capacity(old_size) / 8;
  }

 private:
  std::size_t Hash(std::uint32_t key) const {
    return static_cast<std::size_t>((key * std::uint64_t{0x9E3779B97F4A7C15}) >> 32) & mask_;
  }
  std::vector<std::uint64_t> slots_;
  std::vector<std::uint64_t> used_bits_;  // a bit per slot: not empty
  std::size_t mask_ = 0, limit_ = 0, used_ = 0;
};

}  // namespace qp::delta
