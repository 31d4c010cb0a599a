// Giving memory back after a burst of work. A long-running process that works rarely (the
// agent, between checks) keeps mapped the code and read-only data its last burst touched
// (a full check runs TUF, the patch engine, the store and all of OpenSSL's providers) and
// keeps the heap it grew. Releasing asks the C library to return free heap pages and the
// kernel to page out the process's read-only file mappings (MADV_PAGEOUT): the kernel frees
// the pages no other process maps (whole: a large folio another process maps a part of
// stays), and they are read again from the file when next used.
// Nothing is lost: writable and anonymous memory is not touched, and paging out a clean
// file page changes no byte of what the process sees. This is what Android does to the
// file-backed memory of background apps; it trades a re-read at the next burst for memory
// the device has back meanwhile.
#pragma once

#include <cstdint>

#include "core/result.h"

namespace qp {

struct ReleasedMemory {
  std::uint64_t mappings = 0;  // read-only file mappings advised
  std::uint64_t bytes = 0;     // their size (mapped, not necessarily resident)
};

// Also marks those mappings for random access (MADV_RANDOM), so that what the idle process
// touches again comes back a page at a time. kUnsupported on a kernel without MADV_PAGEOUT
// (before Linux 5.4; the heap is still trimmed); kIo if /proc/self/maps cannot be read.
Result<ReleasedMemory> ReleaseIdleMemory();

// Before the next burst of work: the read-only file mappings are read ahead again as usual
// (MADV_NORMAL), so that the code the work needs comes back in large reads.
void ResumeReadahead();

}  // namespace qp
