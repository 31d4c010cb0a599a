#include "core/memory_release.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
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

// How many pages of [at, at + n) are in the page cache, mapped by this process or not.
std::size_t CachedPages(void* at, std::size_t n) {
  std::vector<unsigned char> in(n / 4096);
  if (::mincore(at, n, in.data()) != 0) return 0;
  std::size_t cached = 0;
  for (unsigned char c : in) cached += c & 1;
  return cached;
}

// A file of kBytes, written and synced (the kernel pages out clean file pages only); its
// content in `content`. The descriptor, open for reading and writing.
int WriteDataFile(const std::string& path, std::vector<std::uint8_t>* content) {
  content->resize(kBytes);
  for (std::size_t i = 0; i < kBytes; ++i) {
    (*content)[i] = static_cast<std::uint8_t>(i * 7 + i / 4096);
  }
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0) return -1;
  if (::write(fd, content->data(), kBytes) != static_cast<ssize_t>(kBytes) || ::fsync(fd) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

TEST(MemoryReleaseTest, ReadOnlyFilePagesGoAndComeBackUnchangedWhileWrittenPagesStay) {
  TestDir dir;
  std::vector<std::uint8_t> content;
  const int fd = WriteDataFile(dir.path() + "/data", &content);
  ASSERT_GE(fd, 0);
  auto* ro = static_cast<std::uint8_t*>(::mmap(nullptr, kBytes, PROT_READ, MAP_PRIVATE, fd, 0));
  // A private writable mapping of the same file, written to: its pages are the process's own.
  auto* rw = static_cast<std::uint8_t*>(
      ::mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0));
  // Written, then made read-only, as the dynamic linker does with the data it relocates: a
  // read-only file mapping whose pages are the process's own.
  auto* relro = static_cast<std::uint8_t*>(
      ::mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0));
  ::close(fd);
  ASSERT_NE(ro, MAP_FAILED);
  ASSERT_NE(rw, MAP_FAILED);
  ASSERT_NE(relro, MAP_FAILED);
  const std::uint64_t want = Sum(content.data(), kBytes);
  EXPECT_EQ(Sum(ro, kBytes), want);  // every page resident now
  for (std::size_t i = 0; i < kBytes; i += 4096) {
    rw[i] = static_cast<std::uint8_t>(rw[i] ^ 0xFF);
    relro[i] = static_cast<std::uint8_t>(relro[i] ^ 0x5A);
  }
  ASSERT_EQ(::mprotect(relro, kBytes, PROT_READ), 0);
  const std::uint64_t written = Sum(rw, kBytes);
  const std::uint64_t relocated = Sum(relro, kBytes);
  ASSERT_NE(relocated, want);
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
  EXPECT_EQ(Sum(relro, kBytes), relocated);
  // Unmapping while idle spares them the same way.
  auto unmapped = UnmapIdlePages();
  ASSERT_TRUE(unmapped.ok()) << unmapped.error().ToString();
  EXPECT_GE(*unmapped, 1U);
  EXPECT_LT(ResidentKb(ro), static_cast<long>(kBytes / 1024) / 4);
  EXPECT_EQ(Sum(ro, kBytes), want);
  EXPECT_EQ(Sum(rw, kBytes), written);
  EXPECT_EQ(Sum(relro, kBytes), relocated);
  ::munmap(ro, kBytes);
  ::munmap(rw, kBytes);
  ::munmap(relro, kBytes);
}

TEST(MemoryReleaseTest, PagesAnotherProcessMapsLeaveThisOneAndStayCachedForTheOther) {
  TestDir dir;
  std::vector<std::uint8_t> content;
  const int fd = WriteDataFile(dir.path() + "/shared", &content);
  ASSERT_GE(fd, 0);
  auto* ro = static_cast<std::uint8_t*>(::mmap(nullptr, kBytes, PROT_READ, MAP_PRIVATE, fd, 0));
  ::close(fd);
  ASSERT_NE(ro, MAP_FAILED);
  const std::uint64_t want = Sum(content.data(), kBytes);
  ASSERT_EQ(Sum(ro, kBytes), want);
  // A second process that maps the same pages (it touches them: a child does not inherit
  // the page table entries of a file mapping) and keeps them until told to go.
  int ready[2], go[2];
  ASSERT_EQ(::pipe(ready), 0);
  ASSERT_EQ(::pipe(go), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(go[1]);
    ::close(ready[0]);
    const bool same = Sum(ro, kBytes) == want;
    char byte = 0;
    const bool told = ::write(ready[1], "r", 1) == 1 && ::read(go[0], &byte, 1) >= 0;
    ::_exit(same && told && Sum(ro, kBytes) == want ? 0 : 1);
  }
  ::close(go[0]);
  ::close(ready[1]);
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  ::close(ready[0]);
  ASSERT_GE(ResidentKb(ro), static_cast<long>(kBytes / 1024) * 3 / 4);

  auto released = ReleaseIdleMemory();
  ASSERT_TRUE(released.ok()) << released.error().ToString();
  EXPECT_GE(released->unmapped, 1U);
  // The kernel could not page them out (the child maps them), so they are still cached, but
  // this process no longer maps them.
  EXPECT_LT(ResidentKb(ro), static_cast<long>(kBytes / 1024) / 4);
  EXPECT_GE(CachedPages(ro, kBytes), kBytes / 4096 * 3 / 4);
  EXPECT_EQ(Sum(ro, kBytes), want);
  // Touched again, then unmapped while idle: the same.
  ASSERT_GE(ResidentKb(ro), static_cast<long>(kBytes / 1024) * 3 / 4);
  auto unmapped = UnmapIdlePages();
  ASSERT_TRUE(unmapped.ok()) << unmapped.error().ToString();
  EXPECT_LT(ResidentKb(ro), static_cast<long>(kBytes / 1024) / 4);
  EXPECT_GE(CachedPages(ro, kBytes), kBytes / 4096 * 3 / 4);
  EXPECT_EQ(Sum(ro, kBytes), want);

  ASSERT_EQ(::write(go[1], "x", 1), 1);
  ::close(go[1]);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child saw other bytes";
  ::munmap(ro, kBytes);
}

}  // namespace
}  // namespace qp
