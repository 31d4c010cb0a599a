// The gzip delta records of a tree patch, made ahead on a second thread. Recompressing
// (gzip -9n, a child process) is the slowest step of most package patches (a Debian
// changelog.gz of 250 KB takes 70 ms), and it needs nothing the other files need: while
// the applier writes the other files on one core, the recompression runs on another.
//
// The lane only computes bytes: it opens, creates and renames nothing (the applier writes
// every file through its sink, in manifest order, as before) and it calls no Env, so an
// Env that numbers operations (FaultInjectionEnv) sees the same sequence as without it.
// Its jobs read held source bytes (memory) and the patch (ReadAt, which every
// RandomAccessFile here allows from two threads). What it makes is checked like any other
// file: against the manifest's size and SHA-256, as the applier writes it.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "core/env.h"
#include "core/result.h"

namespace qp::delta {

class GzipAhead {
 public:
  // Finished files waiting to be taken, at most (each is at most a compressed
  // kMaxGzipContent): memory stays bounded however many gzip records a patch has.
  static constexpr std::size_t kAhead = 2;

  explicit GzipAhead(RandomAccessFile* patch) : patch_(patch) {}
  GzipAhead(const GzipAhead&) = delete;
  GzipAhead& operator=(const GzipAhead&) = delete;
  // Stops: jobs not begun are dropped, the running one is awaited.
  ~GzipAhead();

  // A job for the new file `path`: the payload [offset, offset + length) of the patch
  // applied to `old_gz`, which must stay valid while the lane lives. Before Start only,
  // in the order the files will be taken.
  void Add(const std::string& path, std::span<const std::uint8_t> old_gz, std::uint64_t offset,
           std::uint64_t length);
  void Start();
  bool Has(const std::string& path) const { return index_.count(path) != 0; }
  // The recompressed file for `path` (waiting for it), or why it could not be made. Jobs
  // added before it and not taken are dropped.
  Result<std::vector<std::uint8_t>> Take(const std::string& path);

 private:
  struct Job {
    std::span<const std::uint8_t> old_gz;
    std::uint64_t offset = 0, length = 0;
    std::optional<Result<std::vector<std::uint8_t>>> result;
  };
  void Run();

  RandomAccessFile* patch_;
  std::vector<Job> jobs_;
  std::map<std::string, std::size_t> index_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::size_t next_take_ = 0;  // jobs before it are taken or dropped
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace qp::delta
