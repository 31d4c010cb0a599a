#include "delta/gzip_member.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <random>
#include <string>

#include "core/test_dir.h"
#include "delta/qpatch_format.h"
#include "delta/tree_patch.h"

namespace qp::delta {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

// A changelog-like text: entries of words, newest first.
std::string Changelog(int entries, unsigned seed) {
  std::mt19937 rng(seed);
  static const char* words[] = {"fix",     "CVE-2025-", "buffer", "overflow", "in",
                                "the",     "parser",    "update", "to",       "upstream",
                                "release", "security",  "tests"};
  std::string s;
  for (int e = entries; e > 0; --e) {
    s += "package (" + std::to_string(e) + ".0) stable; urgency=high\n\n";
    for (int l = 0; l < 6; ++l) {
      s += "  *";
      for (int w = 0; w < 9; ++w)
        s += std::string(" ") + words[rng() % 13] + std::to_string(rng() % 1000);
      s += "\n";
    }
    s += "\n -- Maintainer <m@example.org>  Mon, 01 Jan 2024 00:00:00 +0000\n\n";
  }
  return s;
}

Bytes ToBytes(const std::string& s) { return Bytes(s.begin(), s.end()); }
std::string ToString(const Bytes& b) { return std::string(b.begin(), b.end()); }

BuildOptions Fast() {
  BuildOptions o;
  o.diff.compress.zstd_level = 3;
  o.diff.compress.lzma_extreme = false;
  return o;
}

TEST(GzipMemberTest, GunzipReadsWhatGzipWrites) {
  Bytes text = ToBytes(Changelog(50, 1));
  auto gz = GzipBest(text);
  ASSERT_TRUE(gz.ok()) << gz.error().ToString();
  EXPECT_TRUE(LooksGzipped(*gz));
  EXPECT_LT(gz->size(), text.size() / 2);
  auto back = Gunzip(*gz, kMaxGzipContent);
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  EXPECT_EQ(*back, text);
}

TEST(GzipMemberTest, GunzipRefusesDamageTrailingDataAndOversize) {
  auto gz = GzipBest(ToBytes(Changelog(50, 2)));
  ASSERT_TRUE(gz.ok());
  Bytes truncated(gz->begin(), gz->end() - 20);
  EXPECT_EQ(Gunzip(truncated, kMaxGzipContent).error().code(), ErrorCode::kCorrupt);
  Bytes trailing = *gz;
  trailing.push_back(0);
  EXPECT_EQ(Gunzip(trailing, kMaxGzipContent).error().code(), ErrorCode::kCorrupt);
  Bytes flipped = *gz;
  flipped[flipped.size() / 2] ^= 0x55;
  EXPECT_FALSE(Gunzip(flipped, kMaxGzipContent).ok());
  EXPECT_EQ(Gunzip(*gz, 1000).error().code(), ErrorCode::kTooLarge);
  EXPECT_EQ(Gunzip(ToBytes("plain text, not gzip at all"), kMaxGzipContent).error().code(),
            ErrorCode::kCorrupt);
}

// zlib's deflate, not gzip's: valid gzip that gzip -9n does not reproduce.
Bytes ZlibGzip(const Bytes& text, int level) {
  z_stream z{};
  deflateInit2(&z, level, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY);
  Bytes out(deflateBound(&z, text.size()));
  z.next_in = const_cast<Bytef*>(text.data());
  z.avail_in = static_cast<uInt>(text.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

struct GzipTrees {
  TestDir dir;
  std::string old_text = Changelog(300, 3);
  // A new entry at the top, as every release adds: every compressed byte changes.
  std::string new_text = Changelog(1, 99) + old_text;
};

TEST(GzipMemberTest, TreePatchCarriesTheContentDelta) {
  GzipTrees t;
  fs::create_directories(t.dir.Sub("old/doc"));
  fs::create_directories(t.dir.Sub("new/doc"));
  WriteTestFile(t.dir.Sub("old/doc/changelog.gz"), ToString(*GzipBest(ToBytes(t.old_text))));
  std::string new_gz = ToString(*GzipBest(ToBytes(t.new_text)));
  WriteTestFile(t.dir.Sub("new/doc/changelog.gz"), new_gz);
  Env* env = Env::Default();
  auto stats = BuildTreePatch(env, t.dir.Sub("old"), t.dir.Sub("new"), t.dir.Sub("p"), Fast());
  ASSERT_TRUE(stats.ok()) << stats.error().ToString();
  auto patch = env->NewRandomAccessFile(t.dir.Sub("p"));
  ASSERT_TRUE(patch.ok());
  auto header = DecodePatchHeader(**patch);
  ASSERT_TRUE(header.ok()) << header.error().ToString();
  ASSERT_EQ(header->records.size(), 1u);
  EXPECT_EQ(header->records[0].op, RecordOp::kGzipDelta);
  // Far smaller than the compressed file itself, which a plain delta cannot beat by much.
  EXPECT_LT(stats->patch_bytes * 5, new_gz.size()) << stats->patch_bytes << " vs " << new_gz.size();
  ASSERT_TRUE(ApplyPatch(env, t.dir.Sub("old"), t.dir.Sub("p"), t.dir.Sub("out"), {}).ok());
  EXPECT_EQ(ReadTestFile(t.dir.Sub("out/doc/changelog.gz")), new_gz);
}

TEST(GzipMemberTest, GzipThatGzipDoesNotReproduceFallsBackToAPlainDelta) {
  GzipTrees t;
  fs::create_directories(t.dir.Sub("old"));
  fs::create_directories(t.dir.Sub("new"));
  WriteTestFile(t.dir.Sub("old/changelog.gz"), ToString(ZlibGzip(ToBytes(t.old_text), 1)));
  std::string new_gz = ToString(ZlibGzip(ToBytes(t.new_text), 1));
  WriteTestFile(t.dir.Sub("new/changelog.gz"), new_gz);
  Env* env = Env::Default();
  ASSERT_TRUE(BuildTreePatch(env, t.dir.Sub("old"), t.dir.Sub("new"), t.dir.Sub("p"), Fast()).ok());
  auto patch = env->NewRandomAccessFile(t.dir.Sub("p"));
  ASSERT_TRUE(patch.ok());
  auto header = DecodePatchHeader(**patch);
  ASSERT_TRUE(header.ok());
  ASSERT_EQ(header->records.size(), 1u);
  EXPECT_NE(header->records[0].op, RecordOp::kGzipDelta);
  ASSERT_TRUE(ApplyPatch(env, t.dir.Sub("old"), t.dir.Sub("p"), t.dir.Sub("out"), {}).ok());
  EXPECT_EQ(ReadTestFile(t.dir.Sub("out/changelog.gz")), new_gz);
}

}  // namespace
}  // namespace qp::delta
