#include "core/memory_release.h"

#include <malloc.h>
#include <sys/mman.h>

#include <fstream>
#include <functional>
#include <sstream>
#include <string>

namespace qp {
namespace {

// One read-only file mapping of this process, as /proc/self/smaps describes it.
struct FileMapping {
  void* start = nullptr;
  std::size_t length = 0;
  // Pages of the mapping that are the process's own, not the file's: copies made when it was
  // written (before it was made read-only, as the dynamic linker does with relocated data),
  // resident or swapped out. Dropping such a page would lose what was written.
  std::uint64_t own_kb = 0;
};

// Calls `advise` for each read-only file mapping of this process: files only (not [heap],
// [stack], [vdso] or anonymous memory), and never a writable mapping. `listing` is
// /proc/self/smaps, which counts each mapping's own pages (the kernel walks its page tables
// for that), or /proc/self/maps, which does not (own_kb is then 0: not to be relied on).
// False if the listing is unreadable.
bool ForEachReadOnlyFileMapping(const char* listing,
                                const std::function<void(const FileMapping&)>& advise) {
  std::ifstream smaps(listing);
  if (!smaps) return false;
  FileMapping current;
  bool eligible = false;
  const auto finish = [&] {
    if (eligible) advise(current);
    eligible = false;
  };
  std::string line;
  while (std::getline(smaps, line)) {
    std::istringstream fields(line);
    std::string first;
    fields >> first;
    if (first.empty()) continue;
    if (first.back() == ':') {  // "Anonymous:   12 kB", "Swap:   0 kB", "VmFlags: rd ex"
      if (eligible && (first == "Anonymous:" || first == "Swap:")) {
        std::uint64_t kb = 0;
        fields >> kb;
        current.own_kb += kb;
      }
      continue;
    }
    // A mapping's first line: "start-end perms offset dev inode [path]".
    finish();
    std::string perms, offset, dev, inode, path;
    fields >> perms >> offset >> dev >> inode >> path;
    const auto dash = first.find('-');
    if (path.empty() || path[0] != '/' || perms.size() < 4 || perms[1] != '-' ||
        dash == std::string::npos) {
      continue;
    }
    const std::uintptr_t start = std::stoull(first.substr(0, dash), nullptr, 16);
    const std::uintptr_t end = std::stoull(first.substr(dash + 1), nullptr, 16);
    if (end <= start) continue;
    // NOLINTNEXTLINE(performance-no-int-to-ptr): an address the kernel listed
    current = FileMapping{reinterpret_cast<void*>(start), end - start, 0};
    eligible = true;
  }
  finish();
  return true;
}

// Unmaps the mapping's pages from this process (MADV_DONTNEED); they stay in the page cache
// and come back from it, without a read, if the process touches them again. Only where every
// page is the file's: a page the process wrote would be lost. True if it was unmapped.
bool UnmapIfUnwritten(const FileMapping& m) {
  return m.own_kb == 0 && ::madvise(m.start, m.length, MADV_DONTNEED) == 0;
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
  const bool listed = ForEachReadOnlyFileMapping("/proc/self/smaps", [&](const FileMapping& m) {
    // A mapping another thread unmapped meanwhile is refused too, and costs nothing.
    if (::madvise(m.start, m.length, MADV_PAGEOUT) != 0) {
      ++refused;
      return;
    }
    // What the idle process touches again comes back a page at a time, not with the
    // read-around of a sequential reader.
    (void)::madvise(m.start, m.length, MADV_RANDOM);
    ++released.mappings;
    released.bytes += m.length;
    // The pages the kernel kept (other processes map them too: the C library's, for one).
    if (UnmapIfUnwritten(m)) ++released.unmapped;
  });
  if (!listed) return Error(ErrorCode::kIo, "cannot read /proc/self/smaps");
  if (released.mappings == 0 && refused > 0) {
    return Error(ErrorCode::kUnsupported, "the kernel refuses MADV_PAGEOUT (Linux 5.4 or later)");
  }
  return released;
#endif
}

Result<std::uint64_t> UnmapIdlePages() {
  std::uint64_t unmapped = 0;
  const bool listed = ForEachReadOnlyFileMapping("/proc/self/smaps", [&](const FileMapping& m) {
    if (UnmapIfUnwritten(m)) ++unmapped;
  });
  if (!listed) return Error(ErrorCode::kIo, "cannot read /proc/self/smaps");
  return unmapped;
}

void ResumeReadahead() {
  (void)ForEachReadOnlyFileMapping("/proc/self/maps", [](const FileMapping& m) {
    (void)::madvise(m.start, m.length, MADV_NORMAL);
  });
}

}  // namespace qp
