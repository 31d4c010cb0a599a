// Giving memory back after a burst of work. A long-running process that works rarely (the
// agent, between checks) keeps mapped the code and read-only data its last burst touched
// (a full check runs TUF, the patch engine, the store and all of OpenSSL's providers) and
// keeps the heap it grew. Releasing asks the C library to return free heap pages and the
// kernel to page out the process's read-only file mappings (MADV_PAGEOUT): the kernel frees
// the pages no other process maps (whole: a large folio another process maps a part of
// stays), and they are read again from the file when next used. The pages it keeps, because
// other processes map them too (the C library's), are then unmapped from this process
// (MADV_DONTNEED): they stay in the page cache for the others and cost this process nothing
// until it touches them again, when they come back from the cache without a read.
// Nothing is lost: writable and anonymous memory is not touched, paging out a clean file
// page changes no byte of what the process sees, and a read-only mapping is unmapped only if
// every page of it is the file's (none is a copy the process wrote before it was made
// read-only, as the dynamic linker does with relocated data). This is what Android does to the
// file-backed memory of background apps; it trades a re-read at the next burst for memory
// the device has back meanwhile.
#pragma once

#include <cstdint>

#include "core/result.h"

namespace qp {

struct ReleasedMemory {
  std::uint64_t mappings = 0;  // read-only file mappings advised
  std::uint64_t bytes = 0;     // their size (mapped, not necessarily resident)
  std::uint64_t unmapped = 0;  // of those, mappings whose remaining pages were unmapped
};

// Also marks those mappings for random access (MADV_RANDOM), so that what the idle process
// touches again comes back a page at a time. kUnsupported on a kernel without MADV_PAGEOUT
// (before Linux 5.4; the heap is still trimmed); kIo if /proc/self/smaps cannot be read.
Result<ReleasedMemory> ReleaseIdleMemory();

// While the process waits without working (a watch the server holds): unmaps the pages of
// its read-only file mappings (MADV_DONTNEED, only where every page is the file's), which
// stay in the page cache. Cheaper than ReleaseIdleMemory: no page is read from disk when it
// is touched again. kIo if /proc/self/smaps cannot be read. Returns the mappings unmapped.
Result<std::uint64_t> UnmapIdlePages();

// Both act on the mappings /proc/self/smaps listed a moment before: the caller makes sure no
// other thread unmaps a file it mapped meanwhile (the agent holds its lock, under which all
// its work runs), or a range unmapped and reused for fresh memory could be advised too.

// Before the next burst of work: the read-only file mappings are read ahead again as usual
// (MADV_NORMAL), so that the code the work needs comes back in large reads.
void ResumeReadahead();

}  // namespace qp
