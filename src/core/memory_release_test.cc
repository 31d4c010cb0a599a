#include "core/memory_release.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/test_dir.h"

namespace qp {
namespace {

constexpr std::size_t kBytes = 4 << 20;

// The resident kilobytes of the mapping that starts at `at`, from /proc/self/smaps.
long ResidentKb(const void* at) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool ours = false;
  while (std::getline(smaps, line)) {
    std::istringstream fields(line);
    std::string first;
    fields >> first;
    if (first.find('-') != std::string::npos && first.back() != ':') {
      ours = std::stoull(first.substr(0, first.find('-')), nullptr, 16) ==
             reinterpret_cast<std::uintptr_t>(at);
    } else if (ours && first == "Rss:") {
      long kb = -1;
      fields >> kb;
      return kb;
    }
  }
  return -1;
}

std::uint64_t Sum(const std::uint8_t* p, std::size_t n) {
  std::uint64_t s = 0;
  for (std::size_t i = 0; i < n; ++i) s += p[i] * (i % 251 + 1);
  return s;
}

TEST(MemoryReleaseTest, ReadOnlyFilePagesGoAndComeBackUnchangedWhileWrittenPagesStay) {
  TestDir dir;
  const std::string path = dir.path() + "/data";
  std::vector<std::uint8_t> content(kBytes);
  for (std::size_t i = 0; i < kBytes; ++i) content[i] = static_cast<std::uint8_t>(i * 7 + i / 4096);
  // Written and synced: the kernel pages out clean file pages only.
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, content.data(), kBytes), static_cast<ssize_t>(kBytes));
  ASSERT_EQ(::fsync(fd), 0);
  auto* ro = static_cast<std::uint8_t*>(::mmap(nullptr, kBytes, PROT_READ, MAP_PRIVATE, fd, 0));
  // A private writable mapping of the same file, written to: its pages are the process's own.
  auto* rw = static_cast<std::uint8_t*>(
      ::mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0));
  ::close(fd);
  ASSERT_NE(ro, MAP_FAILED);
  ASSERT_NE(rw, MAP_FAILED);
  const std::uint64_t want = Sum(content.data(), kBytes);
  EXPECT_EQ(Sum(ro, kBytes), want);  // every page resident now
  for (std::size_t i = 0; i < kBytes; i += 4096) rw[i] = static_cast<std::uint8_t>(rw[i] ^ 0xFF);
  const std::uint64_t written = Sum(rw, kBytes);
  ASSERT_GE(ResidentKb(ro), static_cast<long>(kBytes / 1024) * 3 / 4);

  auto released = ReleaseIdleMemory();
  ASSERT_TRUE(released.ok()) << released.error().ToString();
  EXPECT_GE(released->bytes, kBytes);
  // The read-only mapping's pages are gone (this test is their only user), the written ones
  // stay.
  EXPECT_LT(ResidentKb(ro), static_cast<long>(kBytes / 1024) / 4);
  EXPECT_GE(ResidentKb(rw), static_cast<long>(kBytes / 1024) * 3 / 4);
  // Nothing changed for the process: the file's bytes come back, the written ones stayed.
  EXPECT_EQ(Sum(ro, kBytes), want);
  EXPECT_EQ(Sum(rw, kBytes), written);
  ::munmap(ro, kBytes);
  ::munmap(rw, kBytes);
}

}  // namespace
}  // namespace qp
