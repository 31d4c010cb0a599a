#include "delta/files_ahead.h"

namespace qp::delta {

FilesAhead::~FilesAhead() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

bool FilesAhead::Add(const std::string& path, std::uint64_t size, bool first, Make make) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!index_.emplace(path, jobs_.size()).second) return false;
    Job job;
    job.path = path;
    job.size = size;
    job.first = first;
    job.make = std::move(make);
    jobs_.push_back(std::move(job));
  }
  cv_.notify_all();
  return true;
}

void FilesAhead::Start() {
  thread_ = std::thread([this] { Run(); });
}

void FilesAhead::Seal() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    sealed_ = true;
  }
  cv_.notify_all();
}

std::size_t FilesAhead::NextForLane() const {
  // The largest first job: the longest to make, so it begins soonest.
  std::size_t best = SIZE_MAX;
  for (std::size_t i = 0; i < jobs_.size(); ++i) {
    if (jobs_[i].first && jobs_[i].owner == Owner::kNone &&
        (best == SIZE_MAX || jobs_[i].size > jobs_[best].size)) {
      best = i;
    }
  }
  if (best != SIZE_MAX || !sealed_) return best;
  for (std::size_t i = jobs_.size(); i-- > 0;) {
    if (jobs_[i].owner == Owner::kNone) return i;
  }
  return SIZE_MAX;
}

void FilesAhead::Run() {
  for (;;) {
    std::size_t i = SIZE_MAX;
    Job* job = nullptr;  // a deque's elements stay where they are as it grows
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] {
        if (stop_) return true;
        i = NextForLane();
        if (i == SIZE_MAX) return sealed_;  // else more may come
        return held_ == 0 || held_ + jobs_[i].size <= budget_;
      });
      if (stop_ || i == SIZE_MAX) return;
      job = &jobs_[i];
      job->owner = Owner::kLane;
      held_ += job->size;
    }
    Result<MadeFile> made = job->make();
    {
      std::lock_guard<std::mutex> lock(mu_);
      job->made.emplace(std::move(made));
    }
    cv_.notify_all();
  }
}

std::optional<Result<MadeFile>> FilesAhead::Claim(const std::string& path) {
  std::unique_lock<std::mutex> lock(mu_);
  auto it = index_.find(path);
  if (it == index_.end()) return std::nullopt;
  Job& job = jobs_[it->second];
  if (job.owner == Owner::kNone) {
    job.owner = Owner::kApplier;
    cv_.notify_all();  // the lane may be waiting to know what is left
    return std::nullopt;
  }
  if (job.owner == Owner::kApplier) {
    return Result<MadeFile>(Error(ErrorCode::kInternal, path + " claimed twice"));
  }
  cv_.wait(lock, [&] { return job.made.has_value(); });
  std::optional<Result<MadeFile>> made = std::move(job.made);
  job.made.reset();
  job.owner = Owner::kApplier;  // taken: a second claim is an error
  held_ -= job.size;
  cv_.notify_all();
  return made;
}

}  // namespace qp::delta
