// Test helpers for the predictors: a minimal ELF header, and the differ's and the
// applier's predictors run side by side over a file.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "core/memory_file.h"
#include "delta/file_delta.h"
#include "delta/predictor.h"

namespace qp::delta {

inline constexpr std::uint16_t kEmX86_64 = 62, kEmAarch64 = 183;

// Minimal ELF64 header for `machine` with the given PT_LOAD segments (offset, vaddr, size).
inline void WriteElfHeader(std::vector<std::uint8_t>& data,
                           const std::vector<std::array<std::uint64_t, 3>>& loads,
                           std::uint16_t machine = kEmX86_64) {
  const std::uint8_t ident[] = {0x7f, 'E', 'L', 'F', 2, 1, 1, 0};
  std::copy(std::begin(ident), std::end(ident), data.begin());
  auto put = [&](std::size_t at, std::uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) data[at + i] = static_cast<std::uint8_t>(v >> (8 * i));
  };
  put(18, machine, 2);
  put(0x20, 64, 8);  // e_phoff
  put(0x36, 56, 2);  // e_phentsize
  put(0x38, loads.size(), 2);
  for (std::size_t k = 0; k < loads.size(); ++k) {
    std::size_t ph = 64 + 56 * k;
    put(ph, 1, 4);  // PT_LOAD
    put(ph + 8, loads[k][0], 8);
    put(ph + 16, loads[k][1], 8);
    put(ph + 32, loads[k][2], 8);
    put(ph + 40, loads[k][2], 8);
  }
}

// Counts the difference bytes a predictor leaves, and checks that the applier's side of
// the same predictor rebuilds `new_data` from them.
inline std::size_t PredictedDifferences(Transform transform,
                                        const std::vector<std::uint8_t>& old_data,
                                        const std::vector<std::uint8_t>& new_data,
                                        const std::vector<Control>& controls,
                                        PredictionStats* stats = nullptr) {
  MemoryFile old_file(old_data);
  auto differ_or = Predictor::Create(transform, old_file, controls, ElfLayout::kAllTables);
  auto applier_or = Predictor::Create(transform, old_file, controls, ElfLayout::kAllTables);
  EXPECT_TRUE(differ_or.ok() && applier_or.ok());
  Predictor& differ = **differ_or;
  Predictor& applier = **applier_or;
  std::size_t nonzero = 0;
  std::uint64_t new_pos = 0;
  for (const Control& c : controls) {
    for (std::uint64_t off = 0; off < c.add; off += kPredictChunk) {
      std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(kPredictChunk, c.add - off));
      std::uint64_t old_at = static_cast<std::uint64_t>(c.old_pos) + off;
      std::vector<std::uint8_t> chunk(old_data.begin() + static_cast<std::ptrdiff_t>(old_at),
                                      old_data.begin() + static_cast<std::ptrdiff_t>(old_at + n));
      std::span<const std::uint8_t> want(new_data.data() + new_pos + off, n);
      EXPECT_TRUE(differ.PredictForDiff(old_at, new_pos + off, chunk, want).ok());
      std::vector<std::uint8_t> diff(n);
      for (std::size_t i = 0; i < n; ++i) {
        diff[i] = static_cast<std::uint8_t>(want[i] - chunk[i]);
        nonzero += diff[i] != 0;
      }
      std::vector<std::uint8_t> rebuilt(old_data.begin() + static_cast<std::ptrdiff_t>(old_at),
                                        old_data.begin() + static_cast<std::ptrdiff_t>(old_at + n));
      EXPECT_TRUE(applier.Reconstruct(old_at, new_pos + off, rebuilt, diff).ok());
      EXPECT_TRUE(std::equal(rebuilt.begin(), rebuilt.end(), want.begin()));
    }
    new_pos += c.add + c.copy;
  }
  EXPECT_EQ(differ.stats().hit, applier.stats().hit);
  EXPECT_EQ(differ.stats().miss, applier.stats().miss);
  if (stats != nullptr) *stats = applier.stats();
  return nonzero;
}

}  // namespace qp::delta
