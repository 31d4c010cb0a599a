#include "core/read_counting_env.h"

namespace qp {
namespace {

class CountingFile final : public RandomAccessFile {
 public:
  CountingFile(std::unique_ptr<RandomAccessFile> base, std::atomic<std::uint64_t>* count)
      : base_(std::move(base)), count_(count) {}
  Result<std::size_t> ReadAt(std::uint64_t offset, std::span<std::uint8_t> buf) override {
    auto n = base_->ReadAt(offset, buf);
    if (n.ok()) count_->fetch_add(*n, std::memory_order_relaxed);
    return n;
  }
  std::uint64_t Size() const override { return base_->Size(); }
  Result<std::span<const std::uint8_t>> Map() override {
    auto m = base_->Map();
    if (m.ok()) count_->fetch_add(m->size(), std::memory_order_relaxed);  // read whole
    return m;
  }

 private:
  std::unique_ptr<RandomAccessFile> base_;
  std::atomic<std::uint64_t>* count_;  // a node of the env's map: stable while the env lives
};

}  // namespace

std::uint64_t ReadCountingEnv::BytesRead(const std::string& path) const {
  auto it = read_.find(path);
  return it == read_.end() ? 0 : it->second.load();
}

std::uint64_t ReadCountingEnv::TotalBytesRead() const {
  std::uint64_t total = 0;
  for (const auto& [path, n] : read_) total += n;
  return total;
}

std::vector<std::string> ReadCountingEnv::PathsRead() const {
  std::vector<std::string> paths;
  for (const auto& [path, n] : read_) paths.push_back(path);
  return paths;
}

Result<std::unique_ptr<RandomAccessFile>> ReadCountingEnv::NewRandomAccessFile(
    const std::string& path) {
  QP_ASSIGN_OR_RETURN(auto file, base_->NewRandomAccessFile(path));
  return std::unique_ptr<RandomAccessFile>(new CountingFile(std::move(file), &read_[path]));
}

}  // namespace qp
