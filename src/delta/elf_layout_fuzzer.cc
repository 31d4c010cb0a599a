// Fuzzes the ELF readers: the input is taken as an old file. ElfLayout::Read must succeed
// (a memory file has no I/O errors) whatever the bytes, and every field it reports must lie
// inside its table. The differ's symbol pairing, of the input with itself and with its
// second half, must give sorted, disjoint functions inside both files. (predictor_fuzzer runs
// the predictors over the same inputs.)
#include <stdlib.h>

#include <cstdint>
#include <vector>

#include "core/memory_file.h"
#include "delta/elf_layout.h"
#include "delta/function_pairs.h"

using qp::delta::ElfLayout;

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

  const std::span<const std::uint8_t> all(old_data);
  for (auto other : {all, all.subspan(size / 2)}) {
    std::int64_t last_end = 0;
    for (const auto& p : qp::delta::PairFunctionsBySymbol(other, all)) {
      if (p.new_begin < last_end || p.new_end <= p.new_begin ||
          p.new_end > static_cast<std::int64_t>(size) || p.new_begin + p.shift < 0 ||
          p.new_end + p.shift > static_cast<std::int64_t>(other.size())) {
        abort();
      }
      last_end = p.new_end;
    }
  }

  return 0;
}
