#include "delta/x86_predictor.h"

#include <algorithm>
#include <cstring>

#include "delta/file_delta.h"

namespace qp::delta {
namespace {

std::int32_t LoadI32(const std::uint8_t* p) {
  std::uint32_t v = static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
                    static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
  return static_cast<std::int32_t>(v);
}

void StoreI32(std::uint8_t* p, std::int32_t value) {
  std::uint32_t v = static_cast<std::uint32_t>(value);
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

}  // namespace

X86Predictor::X86Predictor(std::uint64_t old_size, const std::vector<Control>& controls)
    : old_size_(old_size) {
  std::uint64_t new_pos = 0;
  blocks_.reserve(controls.size());
  for (const Control& c : controls) {
    // Short blocks are usually accidental matches; their offsets predict nothing reliable.
    if (c.add >= 16) {
      auto begin = static_cast<std::uint64_t>(c.old_pos);
      blocks_.push_back(Block{begin, begin + c.add, new_pos});
    }
    new_pos += c.add + c.copy;
  }
  std::stable_sort(blocks_.begin(), blocks_.end(),
                   [](const Block& a, const Block& b) { return a.old_begin < b.old_begin; });
}

bool X86Predictor::Applies(std::span<const std::uint8_t> old_data) {
  static const std::uint8_t kElf64Le[] = {0x7f, 'E', 'L', 'F', 2, 1};
  return old_data.size() >= 64 && std::memcmp(old_data.data(), kElf64Le, 6) == 0 &&
         old_data[18] == 62 && old_data[19] == 0;  // e_machine EM_X86_64
}

Result<std::unique_ptr<X86Predictor>> X86Predictor::ForApply(RandomAccessFile& old_file,
                                                             const std::vector<Control>& controls) {
  return std::make_unique<X86Predictor>(old_file.Size(), controls);
}

bool X86Predictor::Map(std::uint64_t old_offset, std::uint64_t* new_offset) const {
  auto it = std::upper_bound(blocks_.begin(), blocks_.end(), old_offset,
                             [](std::uint64_t v, const Block& b) { return v < b.old_begin; });
  if (it == blocks_.begin()) return false;
  --it;
  if (old_offset >= it->old_end) return false;
  *new_offset = it->new_begin + (old_offset - it->old_begin);
  return true;
}

Status X86Predictor::PredictChunk(std::uint64_t old_at, std::uint64_t new_at,
                                  std::span<std::uint8_t> chunk) const {
  if (chunk.size() > kPredictChunk) {
    return Error(ErrorCode::kInternal, "prediction chunk larger than kPredictChunk");
  }
  std::size_t n = chunk.size();
  std::uint8_t* d = chunk.data();
  for (std::size_t i = 0; i + 5 <= n;) {
    std::size_t len = 0;
    if (d[i] == 0xE8 || d[i] == 0xE9) {
      len = 5;
    } else if (d[i] == 0x0F && i + 6 <= n && (d[i + 1] & 0xF0) == 0x80) {
      len = 6;
    }
    if (len == 0) {
      ++i;
      continue;
    }
    std::uint8_t* disp = d + i + len - 4;
    std::int64_t target = static_cast<std::int64_t>(old_at + i + len) + LoadI32(disp);
    std::uint64_t mapped = 0;
    if (target >= 0 && static_cast<std::uint64_t>(target) < old_size_ &&
        Map(static_cast<std::uint64_t>(target), &mapped)) {
      std::int64_t new_disp = static_cast<std::int64_t>(mapped) -
                              static_cast<std::int64_t>(new_at + i + len);
      if (new_disp >= INT32_MIN && new_disp <= INT32_MAX) {
        StoreI32(disp, static_cast<std::int32_t>(new_disp));
      }
      i += len;
    } else {
      ++i;
    }
  }
  return OkStatus();
}

void X86Predictor::Predict(std::uint64_t old_at, std::uint64_t new_at,
                           std::span<std::uint8_t> block) const {
  for (std::size_t off = 0; off < block.size(); off += kPredictChunk) {
    std::size_t n = std::min(kPredictChunk, block.size() - off);
    (void)PredictChunk(old_at + off, new_at + off, block.subspan(off, n));
  }
}

}  // namespace qp::delta
