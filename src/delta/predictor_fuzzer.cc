// Fuzzes the predictors' agreement: the input is taken as an old file, and the new file is
// the input with every seventh byte changed. For every transform (x86-64 branches, x86-64
// learned, AArch64, AArch64 with frame offsets), whatever the input's e_machine, a differ
// predicting the new file must be undone exactly by the applier's predictor, chunk by
// chunk: the two sides agree on every input, however malformed its headers, tables and
// instructions. Transform 4's literal form is undone too, from any starting offset.
#include <stdlib.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/memory_file.h"
#include "delta/elf_layout.h"
#include "delta/file_delta.h"
#include "delta/predictor.h"

using qp::delta::Control;
using qp::delta::ElfLayout;
using qp::delta::Predictor;
using qp::delta::Transform;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::uint8_t> old_data(data, data + size);
  qp::MemoryFile old_file(old_data);
  std::vector<std::uint8_t> new_data = old_data;
  for (std::size_t i = 0; i < new_data.size(); i += 7)
    new_data[i] = static_cast<std::uint8_t>(new_data[i] + 3);
  // Two blocks, the second overlapping the first in the old file and shifted by a few
  // bytes in the new one.
  std::uint64_t half = size / 2, back = std::min<std::uint64_t>(half, 8);
  std::vector<Control> controls = {Control{half, 0, 0},
                                   Control{size - half, 0, static_cast<std::int64_t>(half - back)}};
  for (Transform t : {Transform::kX86Branches, Transform::kX86Learned, Transform::kArm64,
                      Transform::kArm64Frames}) {
    auto differ = Predictor::Create(t, old_file, controls, ElfLayout::kAllTables);
    auto applier = Predictor::Create(t, old_file, controls, ElfLayout::kAllTables);
    if (!differ.ok() || !applier.ok()) abort();
    std::uint64_t new_pos = 0;
    for (const Control& c : controls) {
      for (std::uint64_t off = 0; off < c.add; off += qp::delta::kPredictChunk) {
        std::size_t n = static_cast<std::size_t>(
            std::min<std::uint64_t>(qp::delta::kPredictChunk, c.add - off));
        std::uint64_t old_at = static_cast<std::uint64_t>(c.old_pos) + off;
        std::vector<std::uint8_t> chunk(old_data.begin() + static_cast<std::ptrdiff_t>(old_at),
                                        old_data.begin() + static_cast<std::ptrdiff_t>(old_at + n));
        std::vector<std::uint8_t> rebuilt = chunk;
        std::span<const std::uint8_t> want(new_data.data() + new_pos + off, n);
        if (!(*differ)->PredictForDiff(old_at, new_pos + off, chunk, want).ok()) abort();
        std::vector<std::uint8_t> diff(n);
        for (std::size_t i = 0; i < n; ++i) diff[i] = static_cast<std::uint8_t>(want[i] - chunk[i]);
        if (!(*applier)->Reconstruct(old_at, new_pos + off, rebuilt, diff).ok()) abort();
        if (!std::equal(rebuilt.begin(), rebuilt.end(), want.begin())) abort();
      }
      new_pos += c.add;
    }
    if ((*differ)->stats().hit != (*applier)->stats().hit ||
        (*differ)->stats().miss != (*applier)->stats().miss) {
      abort();
    }
    if (t == Transform::kArm64Frames) {
      const std::uint64_t at = size > 0 ? data[0] % 8 : 0;
      std::vector<std::uint8_t> stored = new_data;
      qp::delta::Arm64Literals((*applier)->layout(), at, stored, /*to_stored=*/true);
      qp::delta::Arm64Literals((*applier)->layout(), at, stored, /*to_stored=*/false);
      if (stored != new_data) abort();
    }
  }
  return 0;
}
