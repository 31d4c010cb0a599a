// The patch engine's memory bounds at browser-engine scale (docs/patch-format.md, "Memory"):
// a generated 300 MB ELF-like file and a copy with a few hundred edits are diffed and the
// patch applied, each in a child process whose peak resident memory the kernel reports
// (wait4's rusage). Applying must stay within kApplyMemoryBound whatever the file size;
// diffing within 8 times the new file's size.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/test_dir.h"
#include "delta/predictor_testing.h"
#include "delta/tree_patch.h"

namespace qp::delta {
namespace {

constexpr std::uint64_t kOldSize = 300ull << 20;
constexpr int kEdits = 300;

// Peak resident kilobytes of `fn` run in a child process; fails the test if it fails.
long ChildPeakKb(const std::function<Status()>& fn) {
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    Status s = fn();
    if (!s.ok()) std::fprintf(stderr, "child: %s\n", s.error().ToString().c_str());
    std::_Exit(s.ok() ? 0 : 1);
  }
  int status = 0;
  rusage usage{};
  EXPECT_EQ(wait4(pid, &status, 0, &usage), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child failed";
  return usage.ru_maxrss;
}

// Writes the old file (an x86-64 ELF header over bytes that hold no references, in
// 1 MiB chunks) and the new one: the same bytes with kEdits edits, a fifth of them
// insertions that shift everything after them. Never holds either file whole.
void WriteFiles(const std::string& old_path, const std::string& new_path) {
  std::mt19937_64 rng(23);
  struct Edit {
    std::uint64_t at;
    std::uint32_t replace, insert;
  };
  std::vector<Edit> edits;
  for (int i = 0; i < kEdits; ++i) {
    std::uint64_t at = 4096 + rng() % (kOldSize - 8192);
    edits.push_back(i % 5 == 0 ? Edit{at, 0, static_cast<std::uint32_t>(1 + rng() % 64)}
                               : Edit{at, static_cast<std::uint32_t>(1 + rng() % 8), 0});
  }
  std::sort(edits.begin(), edits.end(), [](const Edit& a, const Edit& b) { return a.at < b.at; });
  std::ofstream old_out(old_path, std::ios::binary), new_out(new_path, std::ios::binary);
  std::vector<std::uint8_t> chunk(1 << 20);
  std::size_t next = 0;
  std::uint64_t state = 0x9E3779B97F4A7C15ULL;
  for (std::uint64_t base = 0; base < kOldSize; base += chunk.size()) {
    // Bytes from 0x90..0xBF: no x86 opcode the predictor looks for, and compressible.
    for (auto& b : chunk) {
      state ^= state << 13;
      state ^= state >> 7;
      state ^= state << 17;
      b = static_cast<std::uint8_t>(0x90 + (state >> 40) % 48);
    }
    if (base == 0) WriteElfHeader(chunk, {{0, 0x400000, kOldSize}});
    old_out.write(reinterpret_cast<const char*>(chunk.data()),
                  static_cast<std::streamsize>(chunk.size()));
    std::uint64_t from = 0;
    for (; next < edits.size() && edits[next].at + 8 < base + chunk.size(); ++next) {
      const Edit& e = edits[next];
      const std::uint64_t at = e.at - base;
      new_out.write(reinterpret_cast<const char*>(chunk.data() + from),
                    static_cast<std::streamsize>(at - from));
      for (std::uint32_t k = 0; k < e.replace + e.insert; ++k) {
        new_out.put(static_cast<char>(rng() & 0xff));
      }
      from = at + e.replace;
    }
    new_out.write(reinterpret_cast<const char*>(chunk.data() + from),
                  static_cast<std::streamsize>(chunk.size() - from));
  }
  ASSERT_TRUE(old_out.good() && new_out.good());
}

TEST(LargeFileTest, ApplyMemoryIsBoundedAndDiffStaysWithinEightTimesTheFile) {
  TestDir dir;
  const std::string old_path = dir.path() + "/old", new_path = dir.path() + "/new";
  const std::string patch_path = dir.path() + "/patch", out_path = dir.path() + "/out";
  WriteFiles(old_path, new_path);
  Env* env = Env::Default();
  auto new_info = env->Stat(new_path);
  ASSERT_TRUE(new_info.ok());
  const std::uint64_t new_size = new_info->size;

  const long diff_kb = ChildPeakKb([&]() -> Status {
    auto built = BuildFilePatch(env, old_path, new_path, patch_path, {});
    return built.ok() ? OkStatus() : Status(built.error());
  });
  const long apply_kb =
      ChildPeakKb([&] { return ApplyPatch(env, old_path, patch_path, out_path, {}); });

  auto patch_info = env->Stat(patch_path);
  ASSERT_TRUE(patch_info.ok());
  std::printf(
      "new file %llu bytes, %d edits: patch %llu bytes; diff peak %ld KiB, apply peak %ld "
      "KiB\n",
      static_cast<unsigned long long>(new_size), kEdits,
      static_cast<unsigned long long>(patch_info->size), diff_kb, apply_kb);
  // Rebuilt byte for byte (the applier checks the SHA-256 too; compared here regardless).
  std::ifstream a(new_path, std::ios::binary), b(out_path, std::ios::binary);
  std::vector<char> x(1 << 20), y(1 << 20);
  while (a && b) {
    a.read(x.data(), static_cast<std::streamsize>(x.size()));
    b.read(y.data(), static_cast<std::streamsize>(y.size()));
    ASSERT_EQ(a.gcount(), b.gcount());
    ASSERT_TRUE(std::equal(x.begin(), x.begin() + a.gcount(), y.begin()));
  }
  EXPECT_TRUE(a.eof() && b.eof());
  // A few hundred edits cost kilobytes, not megabytes.
  EXPECT_LT(patch_info->size, 64u << 10);
  EXPECT_LE(static_cast<std::uint64_t>(apply_kb) * 1024, kApplyMemoryBound);
  EXPECT_LE(static_cast<std::uint64_t>(diff_kb) * 1024, 8 * new_size);
}

}  // namespace
}  // namespace qp::delta
