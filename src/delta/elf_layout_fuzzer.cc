// Fuzzes the ELF reader and the x86 predictor over it: the input is taken as an old file.
// ElfLayout::Read must succeed (a memory file has no I/O errors) whatever the bytes, every
// field it reports must lie inside its table, and a predictor that diffs a changed copy of
// the input must be undone exactly by the applier's predictor: the two sides agree on
// every input, however malformed its headers and tables.
#include <stdlib.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "core/memory_file.h"
#include "delta/elf_layout.h"
#include "delta/file_delta.h"
#include "delta/x86_predictor.h"

using qp::delta::Control;
using qp::delta::ElfLayout;
using qp::delta::X86Predictor;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<std::uint8_t> old_data(data, data + size);
  qp::MemoryFile old_file(old_data);
  auto layout = ElfLayout::Read(old_file, ElfLayout::kAllTables);
  if (!layout.ok()) abort();
  for (std::uint64_t pos = 0; pos < size;) {
    std::uint64_t end = 0;
    int kind = layout->TableAt(pos, &end);
    if (end <= pos) abort();
    if (kind >= 0) {
      if (end > size) abort();
      layout->ForEachField(pos, end, [&](const ElfLayout::Field& f) {
        if (f.offset < pos || f.offset + f.width > end) abort();
      });
    }
    pos = end;
  }

  // Two blocks, the second overlapping the first in the old file; the new file is the old
  // one with every seventh byte changed.
  std::vector<std::uint8_t> new_data = old_data;
  for (std::size_t i = 0; i < new_data.size(); i += 7)
    new_data[i] = static_cast<std::uint8_t>(new_data[i] + 3);
  std::uint64_t half = size / 2, back = std::min<std::uint64_t>(half, 8);
  std::vector<Control> controls = {Control{half, 0, 0},
                                   Control{size - half, 0, static_cast<std::int64_t>(half - back)}};
  auto differ = X86Predictor::Create(X86Predictor::Level::kLearned, old_file, controls,
                                     ElfLayout::kAllTables);
  auto applier = X86Predictor::Create(X86Predictor::Level::kLearned, old_file, controls,
                                      ElfLayout::kAllTables);
  if (!differ.ok() || !applier.ok()) abort();
  std::uint64_t new_pos = 0;
  for (const Control& c : controls) {
    for (std::uint64_t off = 0; off < c.add; off += qp::delta::kPredictChunk) {
      std::size_t n =
          static_cast<std::size_t>(std::min<std::uint64_t>(qp::delta::kPredictChunk, c.add - off));
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
  return 0;
}
