#include "core/memory_release.h"

#include <malloc.h>
#include <sys/mman.h>

#include <fstream>
#include <functional>
#include <sstream>
#include <string>

namespace qp {
namespace {

// Calls `advise(start, length)` for each read-only file mapping of this process: files only
// (not [heap], [stack], [vdso] or anonymous memory), and never a writable mapping, whose
// private pages may hold what the process wrote. False if /proc/self/maps is unreadable.
bool ForEachReadOnlyFileMapping(const std::function<void(void*, std::size_t)>& advise) {
  std::ifstream maps("/proc/self/maps");
  if (!maps) return false;
  std::string line;
  while (std::getline(maps, line)) {
    // "start-end perms offset dev inode [path]"
    std::istringstream fields(line);
    std::string range, perms, offset, dev, inode, path;
    fields >> range >> perms >> offset >> dev >> inode >> path;
    if (path.empty() || path[0] != '/' || perms.size() < 4 || perms[1] != '-') continue;
    const auto dash = range.find('-');
    if (dash == std::string::npos) continue;
    const std::uintptr_t start = std::stoull(range.substr(0, dash), nullptr, 16);
    const std::uintptr_t end = std::stoull(range.substr(dash + 1), nullptr, 16);
    // NOLINTNEXTLINE(performance-no-int-to-ptr): an address the kernel listed
    if (end > start) advise(reinterpret_cast<void*>(start), end - start);
  }
  return true;
}

}  // namespace

Result<ReleasedMemory> ReleaseIdleMemory() {
#if defined(__GLIBC__)
  ::malloc_trim(0);
#endif
#if !defined(MADV_PAGEOUT)
  return Error(ErrorCode::kUnsupported, "MADV_PAGEOUT is not defined on this system");
#else
  ReleasedMemory released;
  std::uint64_t refused = 0;
  const bool listed = ForEachReadOnlyFileMapping([&](void* at, std::size_t length) {
    // A mapping another thread unmapped meanwhile is refused too, and costs nothing.
    if (::madvise(at, length, MADV_PAGEOUT) != 0) {
      ++refused;
      return;
    }
    // What the idle process touches again comes back a page at a time, not with the
    // read-around of a sequential reader.
    (void)::madvise(at, length, MADV_RANDOM);
    ++released.mappings;
    released.bytes += length;
  });
  if (!listed) return Error(ErrorCode::kIo, "cannot read /proc/self/maps");
  if (released.mappings == 0 && refused > 0) {
    return Error(ErrorCode::kUnsupported, "the kernel refuses MADV_PAGEOUT (Linux 5.4 or later)");
  }
  return released;
#endif
}

void ResumeReadahead() {
  (void)ForEachReadOnlyFileMapping(
      [](void* at, std::size_t length) { (void)::madvise(at, length, MADV_NORMAL); });
}

}  // namespace qp
