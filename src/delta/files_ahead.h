// New files of a tree patch made ahead, in memory, on a second thread, while the applier
// writes the others: the two work from opposite ends of the manifest. The applier takes
// files in manifest order from the front; the lane takes the eligible ones from the back,
// a gzip delta first wherever it is (recompressing, gzip -9n in a child process, is the
// slowest step of most package patches: a Debian changelog.gz of 250 KB takes 70 ms). A
// file is made by whichever side claims it first, so neither waits for work the other
// could have done, and a file the lane has not begun is the applier's.
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
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/hash.h"
#include "core/result.h"

namespace qp::delta {

// A file made ahead: its bytes, and their SHA-256 when the maker computed it already.
struct MadeFile {
  std::vector<std::uint8_t> bytes;
  std::optional<Sha256Digest> sha256;
};

class FilesAhead {
 public:
  using Make = std::function<Result<MadeFile>()>;
  // `budget`: bytes the lane may hold at once (made and not yet taken, or being made): it
  // begins a file only while they fit (or nothing is held), so memory stays bounded however
  // many files a patch has. The applier gives it the held sources' budget
  // (install_cache_bytes on a device).
  explicit FilesAhead(std::uint64_t budget) : budget_(budget) {}
  FilesAhead(const FilesAhead&) = delete;
  FilesAhead& operator=(const FilesAhead&) = delete;
  // Stops: files not begun are dropped, the one being made is awaited.
  ~FilesAhead();

  // A file the lane may make: entry `path`, `size` bytes (the manifest's). `first`: taken
  // before the others, the largest first (gzip deltas: the larger, the longer gzip runs). Files are
  // added in manifest order, except that first ones may come earlier (before the old tree is
  // scanned: they need little of it); false if `path` was added already.
  bool Add(const std::string& path, std::uint64_t size, bool first, Make make);
  // Starts the lane (Add may go on); Seal says nothing more comes, and the lane ends when
  // no file is left.
  void Start();
  void Seal();
  // The applier's turn for `path`: nullopt if the lane has not begun it (it is the
  // applier's now, the lane will not touch it), else what the lane made, waiting for it.
  std::optional<Result<MadeFile>> Claim(const std::string& path);

 private:
  enum class Owner { kNone, kLane, kApplier };
  struct Job {
    std::string path;
    std::uint64_t size = 0;
    bool first = false;
    Make make;
    Owner owner = Owner::kNone;
    std::optional<Result<MadeFile>> made;
  };
  // The next job for the lane (the largest first one, else the last unclaimed, once
  // sealed: the back of the manifest is known then), or SIZE_MAX.
  std::size_t NextForLane() const;
  void Run();

  const std::uint64_t budget_;
  std::mutex mu_;         // guards everything below but `thread_`
  std::deque<Job> jobs_;  // stable: a job is made outside the lock
  std::map<std::string, std::size_t> index_;
  bool sealed_ = false;
  std::condition_variable cv_;
  std::uint64_t held_ = 0;  // bytes of jobs begun by the lane and not yet taken
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace qp::delta
