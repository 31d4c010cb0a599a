// In-memory implementations of the Env file interfaces, for pure cores, tests and fuzzers:
// a RandomAccessFile over borrowed bytes, and a WritableFile that appends to a vector.
#pragma once

#include <cstring>
#include <string>
#include <vector>

#include "core/env.h"

namespace qp {

class MemoryFile final : public RandomAccessFile {
 public:
  // `data` must outlive the MemoryFile.
  explicit MemoryFile(std::span<const std::uint8_t> data) : data_(data) {}
  Result<std::size_t> ReadAt(std::uint64_t offset, std::span<std::uint8_t> buf) override {
    if (offset >= data_.size()) return std::size_t{0};
    std::size_t n = std::min<std::uint64_t>(buf.size(), data_.size() - offset);
    if (n > 0) std::memcpy(buf.data(), data_.data() + offset, n);  // buf may be empty (null)
    return n;
  }
  std::uint64_t Size() const override { return data_.size(); }
  Result<std::span<const std::uint8_t>> Map() override { return data_; }

 private:
  std::span<const std::uint8_t> data_;
};

class VectorSink final : public WritableFile {
 public:
  // Appends to `out`; an append that would take it past `limit` bytes fails (kTooLarge).
  explicit VectorSink(std::vector<std::uint8_t>* out, std::uint64_t limit = UINT64_MAX)
      : out_(out), limit_(limit) {}
  Status Append(std::span<const std::uint8_t> data) override {
    if (data.size() > limit_ - std::min<std::uint64_t>(limit_, out_->size())) {
      return Error(ErrorCode::kTooLarge, "more than " + std::to_string(limit_) + " bytes");
    }
    out_->insert(out_->end(), data.begin(), data.end());
    return OkStatus();
  }
  Status Sync() override { return OkStatus(); }
  Status Close() override { return OkStatus(); }

 private:
  std::vector<std::uint8_t>* out_;
  std::uint64_t limit_;
};

}  // namespace qp
