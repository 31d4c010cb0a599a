#include "store/process_maps.h"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/env.h"
#include "core/test_dir.h"
#include "core/test_process.h"

namespace qp::store {
namespace {

TEST(ProcessMapsTest, ParsesMapsLines) {
  auto maps = ParseMaps(
      "55d0c0a00000-55d0c0a02000 r--p 00000000 08:01 1311 /usr/bin/cat\n"
      "7f1e2c000000-7f1e2c021000 rw-p 00000000 00:00 0 \n"
      "7f1e2c200000-7f1e2c228000 r-xp 00028000 fd:02 98765 /opt/comp.qp-previous/lib/libx.so "
      "(deleted)\n"
      "garbage\n"
      "7ffd1b3f0000-7ffd1b411000 rw-p 00000000 00:00 0 [stack]\n");
  ASSERT_EQ(maps.size(), 2u);
  EXPECT_EQ(maps[0].path, "/usr/bin/cat");
  EXPECT_EQ(maps[0].inode, 1311u);
  EXPECT_EQ(maps[0].dev_major, 8u);
  EXPECT_TRUE(maps[1].deleted);
  EXPECT_EQ(maps[1].path, "/opt/comp.qp-previous/lib/libx.so");
  EXPECT_EQ(maps[1].dev_major, 0xfdu);
  EXPECT_EQ(maps[1].dev_minor, 2u);
}

TEST(ProcessMapsTest, AProcessMappingAReplacedFileNeedsARestartUntilItRestarts) {
  TestDir dir;
  std::string lib = dir.Sub("libdemo.so");
  WriteTestFile(lib, std::string(8192, 'v') + "version 1");
  std::vector<std::pair<std::string, std::string>> aliases = {{lib, lib}};
  // python3 maps the file and waits.
  std::string script =
      "import mmap,sys,time\n"
      "f=open(sys.argv[1],'rb'); m=mmap.mmap(f.fileno(),0,prot=mmap.PROT_READ)\n"
      "print('mapped',flush=True); time.sleep(60)\n";
  auto start = [&]() {
    auto p =
        std::make_unique<BackgroundProcess>(std::vector<std::string>{"python3", "-c", script, lib});
    EXPECT_NE(p->WaitForOutput("mapped", 10000), "");
    return p;
  };
  auto holder = start();
  auto pids = [&]() {
    std::vector<int> out;
    for (const auto& p : FindStaleMappings("/proc", aliases)) out.push_back(p.pid);
    return out;
  };
  auto contains = [](const std::vector<int>& v, int pid) {
    return std::find(v.begin(), v.end(), pid) != v.end();
  };
  EXPECT_FALSE(contains(pids(), holder->pid()));  // maps the live file: fine

  // Replace the file the way the store does: a new file renamed over it.
  WriteTestFile(lib + ".new", std::string(8192, 'v') + "version 2");
  ASSERT_TRUE(Env::Default()->Rename(lib + ".new", lib).ok());
  auto stale = FindStaleMappings("/proc", aliases);
  auto it = std::find_if(stale.begin(), stale.end(),
                         [&](const ProcessRef& p) { return p.pid == holder->pid(); });
  ASSERT_NE(it, stale.end());
  EXPECT_EQ(it->name, "python3");

  // After a restart it maps the new file.
  holder->Stop(SIGKILL);
  holder = start();
  EXPECT_FALSE(contains(pids(), holder->pid()));
}

}  // namespace
}  // namespace qp::store
