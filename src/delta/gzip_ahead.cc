#include "delta/gzip_ahead.h"

#include "delta/gzip_member.h"

namespace qp::delta {

GzipAhead::~GzipAhead() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void GzipAhead::Add(const std::string& path, std::span<const std::uint8_t> old_gz,
                    std::uint64_t offset, std::uint64_t length) {
  index_.emplace(path, jobs_.size());
  jobs_.push_back(Job{old_gz, offset, length, std::nullopt});
}

void GzipAhead::Start() {
  if (!jobs_.empty()) thread_ = std::thread([this] { Run(); });
}

void GzipAhead::Run() {
  for (std::size_t i = 0; i < jobs_.size(); ++i) {
    Job* job = nullptr;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stop_ || i < next_take_ + kAhead; });
      if (stop_) return;
      if (i < next_take_) continue;  // dropped before it began
      job = &jobs_[i];
    }
    auto made = RecompressGzipDelta(job->old_gz, *patch_, job->offset, job->length);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (i >= next_take_) job->result.emplace(std::move(made));  // else dropped meanwhile
    }
    cv_.notify_all();
  }
}

Result<std::vector<std::uint8_t>> GzipAhead::Take(const std::string& path) {
  auto it = index_.find(path);
  if (it == index_.end()) return Error(ErrorCode::kInternal, "no gzip job for " + path);
  const std::size_t i = it->second;
  std::unique_lock<std::mutex> lock(mu_);
  if (i < next_take_) return Error(ErrorCode::kInternal, "gzip job for " + path + " taken twice");
  for (std::size_t j = next_take_; j < i; ++j) jobs_[j].result.reset();  // dropped
  next_take_ = i;
  cv_.notify_all();  // the lane may begin up to kAhead jobs from here
  cv_.wait(lock, [&] { return jobs_[i].result.has_value(); });
  Result<std::vector<std::uint8_t>> made = std::move(*jobs_[i].result);
  jobs_[i].result.reset();
  next_take_ = i + 1;
  cv_.notify_all();
  return made;
}

}  // namespace qp::delta
