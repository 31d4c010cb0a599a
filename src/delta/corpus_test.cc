// Round trips over the real Debian security updates in ../shared/corpus: every pair as a
// whole package tree (which patches every file in it), and the main libraries as file
// patches. The corpus is required: a missing corpus fails these tests.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>

#include "core/test_dir.h"
#include "delta/tree_patch.h"

namespace qp::delta {
namespace {

namespace fs = std::filesystem;

std::string CorpusDir() {
  const char* src = std::getenv("QP_SOURCE_DIR");
  return std::string(src ? src : ".") + "/../shared/corpus/debs";
}

std::string Unpack(const TestDir& dir, const std::string& deb) {
  std::string out = dir.Sub(deb);
  std::string cmd = "dpkg-deb -x '" + CorpusDir() + "/" + deb + ".deb' '" + out + "'";
  if (std::system(cmd.c_str()) != 0) return "";
  return out;
}

BuildOptions TestOptions() {
  BuildOptions o;  // real matching and transforms; lighter entropy settings to keep CI quick
  o.diff.compress.zstd_level = 9;
  o.diff.compress.lzma_extreme = false;
  return o;
}

struct Pair {
  const char* old_deb;
  const char* new_deb;
  const char* main_file;  // checked as a file patch too ("" to skip)
};

class CorpusTest : public testing::TestWithParam<Pair> {};

TEST_P(CorpusTest, TreeAndMainFileRoundTrip) {
  const Pair& p = GetParam();
  ASSERT_TRUE(fs::exists(CorpusDir())) << "corpus not found at " << CorpusDir();
  TestDir dir;
  std::string old_tree = Unpack(dir, p.old_deb), new_tree = Unpack(dir, p.new_deb);
  ASSERT_FALSE(old_tree.empty() || new_tree.empty()) << "dpkg-deb failed";
  Env* env = Env::Default();
  auto stats = BuildTreePatch(env, old_tree, new_tree, dir.Sub("tree.qpatch"), TestOptions());
  ASSERT_TRUE(stats.ok()) << stats.error().ToString();
  Status s = ApplyPatch(env, old_tree, dir.Sub("tree.qpatch"), dir.Sub("out"), {});
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  auto want = ScanTree(env, new_tree);
  auto got = ScanTree(env, dir.Sub("out"));
  ASSERT_TRUE(want.ok() && got.ok());
  ASSERT_EQ(want->size(), got->size());
  for (std::size_t i = 0; i < want->size(); ++i) {
    EXPECT_EQ((*want)[i].path, (*got)[i].path);
    EXPECT_EQ((*want)[i].sha256, (*got)[i].sha256) << (*want)[i].path;
    EXPECT_EQ((*want)[i].mode, (*got)[i].mode) << (*want)[i].path;
  }
  EXPECT_LT(stats->patch_bytes, fs::file_size(CorpusDir() + "/" + p.new_deb + ".deb") / 4);

  if (std::string(p.main_file).empty()) return;
  std::string a = old_tree + "/" + p.main_file, b = new_tree + "/" + p.main_file;
  ASSERT_TRUE(BuildFilePatch(env, a, b, dir.Sub("file.qpatch"), TestOptions()).ok());
  ASSERT_TRUE(ApplyPatch(env, a, dir.Sub("file.qpatch"), dir.Sub("file.out"), {}).ok());
  EXPECT_EQ(ReadTestFile(dir.Sub("file.out")), ReadTestFile(b));
}

INSTANTIATE_TEST_SUITE_P(
    Debian, CorpusTest,
    testing::Values(
        Pair{"libssl3_3.0.17-1~deb12u2_amd64", "libssl3_3.0.20-1~deb12u2_amd64",
             "usr/lib/x86_64-linux-gnu/libcrypto.so.3"},
        Pair{"libssl3_3.0.20-1~deb12u2_amd64", "libssl3_3.0.22-1~deb12u2_amd64",
             "usr/lib/x86_64-linux-gnu/libssl.so.3"},
        Pair{"libssl3_3.0.17-1~deb12u2_amd64", "libssl3_3.0.22-1~deb12u2_amd64", ""},
        Pair{"libc6_2.36-9+deb12u7_amd64", "libc6_2.36-9+deb12u14_amd64",
             "lib/x86_64-linux-gnu/libc.so.6"},
        Pair{"libnode108_18.20.4+dfsg-1~deb12u2_amd64", "libnode108_18.20.4+dfsg-1~deb12u3_amd64",
             ""}),
    [](const testing::TestParamInfo<Pair>& param_info) {
      std::string n = std::string(param_info.param.old_deb).substr(0, 6) + "_" + std::to_string(param_info.index);
      for (auto& c : n) if (!isalnum(static_cast<unsigned char>(c))) c = '_';
      return n;
    });

}  // namespace
}  // namespace qp::delta
