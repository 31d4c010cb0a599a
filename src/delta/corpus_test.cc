// Round trips over the real Debian security updates in testdata/debs, amd64 and arm64 builds:
// every pair as a whole package tree (which patches every file in it), and the main libraries
// as file patches. The corpus is required: a missing or altered package fails these tests.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/durable_file.h"
#include "core/memory_file.h"
#include "core/test_data.h"
#include "core/test_dir.h"
#include "delta/elf_layout.h"
#include "delta/file_delta.h"
#include "delta/file_delta_format.h"
#include "delta/function_pairs.h"
#include "delta/predictor.h"
#include "delta/qpatch_format.h"
#include "delta/tree_patch.h"

namespace qp::delta {
namespace {

namespace fs = std::filesystem;

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
  TestDir dir;
  std::string old_tree = UnpackTestDeb(dir, p.old_deb), new_tree = UnpackTestDeb(dir, p.new_deb);
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
  EXPECT_LT(stats->patch_bytes, fs::file_size(TestDeb(p.new_deb)) / 4);

  if (std::string(p.main_file).empty()) return;
  std::string a = old_tree + "/" + p.main_file, b = new_tree + "/" + p.main_file;
  ASSERT_TRUE(BuildFilePatch(env, a, b, dir.Sub("file.qpatch"), TestOptions()).ok());
  ASSERT_TRUE(ApplyPatch(env, a, dir.Sub("file.qpatch"), dir.Sub("file.out"), {}).ok());
  EXPECT_EQ(ReadTestFile(dir.Sub("file.out")), ReadTestFile(b));
}

INSTANTIATE_TEST_SUITE_P(
    Debian, CorpusTest,
    testing::Values(Pair{"libssl3_3.0.17-1~deb12u2_amd64", "libssl3_3.0.20-1~deb12u2_amd64",
                         "usr/lib/x86_64-linux-gnu/libcrypto.so.3"},
                    Pair{"libssl3_3.0.20-1~deb12u2_amd64", "libssl3_3.0.22-1~deb12u2_amd64",
                         "usr/lib/x86_64-linux-gnu/libssl.so.3"},
                    Pair{"libssl3_3.0.17-1~deb12u2_amd64", "libssl3_3.0.22-1~deb12u2_amd64", ""},
                    Pair{"libc6_2.36-9+deb12u7_amd64", "libc6_2.36-9+deb12u14_amd64",
                         "lib/x86_64-linux-gnu/libc.so.6"},
                    Pair{"libnode108_18.20.4+dfsg-1~deb12u2_amd64",
                         "libnode108_18.20.4+dfsg-1~deb12u3_amd64", ""},
                    // The arm64 builds of the same updates (AArch64 prediction, format 3).
                    Pair{"libssl3_3.0.17-1~deb12u2_arm64", "libssl3_3.0.20-1~deb12u2_arm64",
                         "usr/lib/aarch64-linux-gnu/libcrypto.so.3"},
                    Pair{"libssl3_3.0.20-1~deb12u2_arm64", "libssl3_3.0.22-1~deb12u2_arm64",
                         "usr/lib/aarch64-linux-gnu/libssl.so.3"},
                    Pair{"libc6_2.36-9+deb12u7_arm64", "libc6_2.36-9+deb12u14_arm64",
                         "lib/aarch64-linux-gnu/libc.so.6"},
                    Pair{"libnode108_18.20.4+dfsg-1~deb12u2_arm64",
                         "libnode108_18.20.4+dfsg-1~deb12u3_arm64", ""}),
    [](const testing::TestParamInfo<Pair>& param_info) {
      std::string deb = param_info.param.old_deb;
      std::string n = deb.substr(0, 6) + "_" + deb.substr(deb.rfind('_') + 1) + "_" +
                      std::to_string(param_info.index);
      for (auto& c : n)
        if (!isalnum(static_cast<unsigned char>(c))) c = '_';
      return n;
    });

std::vector<std::uint8_t> ReadBytes(const std::string& path) {
  std::string s = ReadTestFile(path);
  return std::vector<std::uint8_t>(s.begin(), s.end());
}

// A library of two versions of a corpus package (libssl3 3.0.17 -> 3.0.20 of `arch`).
struct LibraryPair {
  std::string old_tree, new_tree, lib;
  std::vector<std::uint8_t> old_data, new_data;
};

LibraryPair ReadLibssl3Pair(const TestDir& dir, const std::string& arch, const std::string& name) {
  LibraryPair p;
  p.old_tree = UnpackTestDeb(dir, "libssl3_3.0.17-1~deb12u2_" + arch);
  p.new_tree = UnpackTestDeb(dir, "libssl3_3.0.20-1~deb12u2_" + arch);
  p.lib = (arch == "amd64" ? "/usr/lib/x86_64-linux-gnu/" : "/usr/lib/aarch64-linux-gnu/") + name;
  p.old_data = ReadBytes(p.old_tree + p.lib);
  p.new_data = ReadBytes(p.new_tree + p.lib);
  return p;
}

// The address tables ElfLayout finds in a real library agree with the library's own
// bookkeeping: one .eh_frame_hdr entry per FDE, relocation fields in pairs.
TEST(CorpusElfLayoutTest, TablesOfLibcAgreeWithItsSearchTable) {
  TestDir dir;
  std::string tree = UnpackTestDeb(dir, "libc6_2.36-9+deb12u14_amd64");
  std::vector<std::uint8_t> libc = ReadBytes(tree + "/lib/x86_64-linux-gnu/libc.so.6");
  MemoryFile file(libc);
  auto layout = ElfLayout::Read(file, ElfLayout::kAllTables);
  ASSERT_TRUE(layout.ok()) << layout.error().ToString();
  EXPECT_GE(layout->segments().size(), 3u);
  std::size_t count[ElfLayout::kTableKinds] = {};
  std::size_t hdr_entries = 0, cie_pointers = 0, eh_self = 0;
  for (std::uint64_t pos = 0; pos < libc.size();) {
    std::uint64_t end = 0;
    int kind = layout->TableAt(pos, &end);
    if (kind >= 0) {
      layout->ForEachField(pos, end, [&](const ElfLayout::Field& f) {
        ++count[kind];
        std::int64_t vaddr = 0;
        EXPECT_TRUE(layout->OffsetToVaddr(f.offset, &vaddr) || kind == 1) << f.offset;
        if (f.base == ElfLayout::FieldBase::kSection) ++hdr_entries;
        if (f.base == ElfLayout::FieldBase::kSelfBackward) ++cie_pointers;
        if (kind == 4 && f.base == ElfLayout::FieldBase::kSelf) ++eh_self;
      });
    }
    pos = end;
  }
  for (int k = 0; k < ElfLayout::kTableKinds; ++k) EXPECT_GT(count[k], 0u) << "table kind " << k;
  EXPECT_EQ(count[0] % 2, 0u);               // r_offset and r_addend of every relocation
  EXPECT_EQ(hdr_entries, 2 * cie_pointers);  // (location, FDE) per FDE
  EXPECT_GE(eh_self, cie_pointers);          // every FDE's initial location (+ personality)
  EXPECT_GT(cie_pointers, 1000u);
}

// Predicting the tables is what makes the patch small: the same pair without them.
TEST(CorpusElfLayoutTest, TablePredictionShrinksARealPatch) {
  TestDir dir;
  const LibraryPair pair = ReadLibssl3Pair(dir, "amd64", "libssl.so.3");
  const auto& old_data = pair.old_data;
  const auto& new_data = pair.new_data;
  FileDiffOptions with = TestOptions().diff, without = TestOptions().diff;
  without.tables = 0;
  auto p1 = DiffFile(old_data, new_data, with);
  auto p0 = DiffFile(old_data, new_data, without);
  ASSERT_TRUE(p1.ok() && p0.ok());
  for (const auto* p : {&*p1, &*p0}) {
    auto rebuilt = ApplyFileDeltaToMemory(old_data, *p);
    ASSERT_TRUE(rebuilt.ok()) << rebuilt.error().ToString();
    EXPECT_TRUE(*rebuilt == new_data);
  }
  EXPECT_LT(p1->size() * 10, p0->size() * 9) << p1->size() << " vs " << p0->size();
}

// Functions paired by .dynsym name: libcrypto.so.3 exports thousands; each pair's old copy
// mostly starts with the same bytes as the new function, and preferring it makes the patch
// smaller (258 bytes at the CI settings' full entropy coding; any gain passes here).
TEST(CorpusSymbolTest, PairedFunctionsMakeASmallerPatch) {
  TestDir dir;
  const LibraryPair pair = ReadLibssl3Pair(dir, "amd64", "libcrypto.so.3");
  const auto& old_data = pair.old_data;
  const auto& new_data = pair.new_data;
  auto pairs = PairFunctionsBySymbol(old_data, new_data);
  ASSERT_GT(pairs.size(), 3000u);
  std::size_t same_start = 0, same_start_wrong = 0;
  std::int64_t last_end = 0;
  auto starts_alike = [&](std::int64_t new_at, std::int64_t old_at, std::int64_t size) {
    const auto n = static_cast<std::ptrdiff_t>(std::min<std::int64_t>(16, size));
    return old_at + n <= static_cast<std::int64_t>(old_data.size()) &&
           std::equal(new_data.begin() + new_at, new_data.begin() + new_at + n,
                      old_data.begin() + old_at);
  };
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    const FunctionPair& p = pairs[i];
    ASSERT_GE(p.new_begin, last_end);
    ASSERT_LE(p.new_end, static_cast<std::int64_t>(new_data.size()));
    const std::int64_t at = p.new_begin + p.shift;
    ASSERT_GE(at, 0);
    ASSERT_LE(at + (p.new_end - p.new_begin), static_cast<std::int64_t>(old_data.size()));
    same_start += starts_alike(p.new_begin, at, p.new_end - p.new_begin);
    // Paired with the next pair's old function instead: a wrong pairing.
    const FunctionPair& q = pairs[(i + 1) % pairs.size()];
    same_start_wrong += starts_alike(p.new_begin, q.new_begin + q.shift, p.new_end - p.new_begin);
    last_end = p.new_end;
  }
  // Calls and RIP-relative operands in the first 16 bytes change with the layout, so not all.
  EXPECT_GT(same_start * 2, pairs.size()) << same_start << " of " << pairs.size();
  EXPECT_GT(same_start, 4 * same_start_wrong) << same_start << " vs " << same_start_wrong;
  // A file that is not ELF, or an ELF file against a stranger, pairs nothing.
  EXPECT_TRUE(PairFunctionsBySymbol(old_data, std::span(new_data).subspan(1)).empty());

  FileDiffOptions with = TestOptions().diff, without = TestOptions().diff;
  without.symbol_pairing = false;
  auto p1 = DiffFile(old_data, new_data, with);
  auto p0 = DiffFile(old_data, new_data, without);
  ASSERT_TRUE(p1.ok() && p0.ok());
  auto rebuilt = ApplyFileDeltaToMemory(old_data, *p1);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.error().ToString();
  EXPECT_TRUE(*rebuilt == new_data);
  EXPECT_LT(p1->size(), p0->size());
}

// AArch64 prediction on a real arm64 library: transform 4 in a format 5 patch, at most
// half the size of the same patch without prediction, and every kind of reference seen.
TEST(CorpusArm64Test, PredictionHalvesARealPatch) {
  TestDir dir;
  const LibraryPair pair = ReadLibssl3Pair(dir, "arm64", "libssl.so.3");
  const auto& old_data = pair.old_data;
  const auto& new_data = pair.new_data;
  FileDiffOptions with = TestOptions().diff, without = TestOptions().diff;
  without.executable_transform = false;
  auto p3 = DiffFile(old_data, new_data, with);
  auto p0 = DiffFile(old_data, new_data, without);
  ASSERT_TRUE(p3.ok() && p0.ok());
  EXPECT_EQ((*p3)[0], static_cast<std::uint8_t>(Transform::kArm64Frames));
  MemoryFile old_file(old_data), patch(*p3);
  std::vector<std::uint8_t> rebuilt;
  VectorSink sink(&rebuilt);
  auto applied = ApplyFileDelta(old_file, patch, 0, p3->size(), sink);
  ASSERT_TRUE(applied.ok()) << applied.error().ToString();
  EXPECT_TRUE(rebuilt == new_data);
  for (RefKind k : {RefKind::kA64Branch, RefKind::kA64CondBranch, RefKind::kA64Adr,
                    RefKind::kA64AdrpPair, RefKind::kA64Frame, RefKind::kRela, RefKind::kPointers,
                    RefKind::kEhFrameHdr, RefKind::kEhFrame}) {
    const auto i = static_cast<std::size_t>(k);
    EXPECT_GT(applied->prediction.hit[i], 10 * applied->prediction.miss[i]) << RefKindName(k);
  }
  EXPECT_LT(p3->size() * 2, p0->size()) << p3->size() << " vs " << p0->size();

  // A tree patch holding it says version 5, which only readers of transform 4 accept (an
  // amd64 tree patch stays at version 2, one with transform 3 at 3); so does a file patch.
  Env* env = Env::Default();
  for (const char* tree : {"ta", "tb"}) ASSERT_TRUE(MakeDirs(env, dir.Sub(tree)).ok());
  WriteTestFile(dir.Sub("ta/libssl.so.3"), std::string(old_data.begin(), old_data.end()));
  WriteTestFile(dir.Sub("tb/libssl.so.3"), std::string(new_data.begin(), new_data.end()));
  ASSERT_TRUE(
      BuildTreePatch(env, dir.Sub("ta"), dir.Sub("tb"), dir.Sub("arm64.qpatch"), TestOptions())
          .ok());
  auto level3 = TestOptions();
  level3.diff.arm64_level = kTransformArm64;
  ASSERT_TRUE(
      BuildTreePatch(env, dir.Sub("ta"), dir.Sub("tb"), dir.Sub("arm64-3.qpatch"), level3).ok());
  ASSERT_TRUE(BuildFilePatch(env, pair.old_tree + pair.lib, pair.new_tree + pair.lib,
                             dir.Sub("file.qpatch"), TestOptions())
                  .ok());
  for (const auto& [name, version] :
       {std::pair{"arm64.qpatch", 5}, {"arm64-3.qpatch", 3}, {"file.qpatch", 5}}) {
    auto file = env->NewRandomAccessFile(dir.Sub(name));
    ASSERT_TRUE(file.ok());
    auto header = DecodePatchHeader(**file);
    ASSERT_TRUE(header.ok());
    EXPECT_EQ(header->version, version) << name;
  }
}

}  // namespace
}  // namespace qp::delta
