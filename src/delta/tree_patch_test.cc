#include "delta/tree_patch.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <set>

#include "core/durable_file.h"
#include "core/fault_env.h"
#include "core/hash.h"
#include "core/memory_file.h"
#include "core/read_counting_env.h"
#include "core/test_dir.h"
#include "delta/byte_io.h"

namespace qp::delta {
namespace {

namespace fs = std::filesystem;

std::string RandomText(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

std::vector<std::uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

BuildOptions Fast() {
  BuildOptions o;
  o.diff.compress.zstd_level = 3;
  o.diff.compress.lzma_extreme = false;
  return o;
}

// Old tree and new tree with every kind of change.
void MakeTrees(const TestDir& d) {
  fs::create_directories(d.Sub("old/lib/engines"));
  fs::create_directories(d.Sub("old/gone"));
  fs::create_directories(d.Sub("new/lib/engines"));
  fs::create_directories(d.Sub("new/share"));
  std::string lib = RandomText(100000, 1);
  WriteTestFile(d.Sub("old/lib/libfoo.so.1.2"), lib);
  std::string lib2 = lib;
  lib2[5000] ^= 1;
  lib2.insert(20000, "inserted bytes");
  WriteTestFile(d.Sub("new/lib/libfoo.so.1.3"), lib2);  // renamed and changed
  WriteTestFile(d.Sub("old/lib/engines/same.so"), RandomText(5000, 2));
  WriteTestFile(d.Sub("new/lib/engines/same.so"), RandomText(5000, 2));  // unchanged
  WriteTestFile(d.Sub("old/lib/moved"), RandomText(3000, 3));
  WriteTestFile(d.Sub("new/share/moved-here"), RandomText(3000, 3));  // renamed only
  WriteTestFile(d.Sub("old/gone/file"), "deleted");
  WriteTestFile(d.Sub("new/share/added.txt"), "a new file\n");
  WriteTestFile(d.Sub("old/empty"), "");
  WriteTestFile(d.Sub("new/empty"), "");
  WriteTestFile(d.Sub("old/script"), "#!/bin/sh\n");
  WriteTestFile(d.Sub("new/script"), "#!/bin/sh\n");
  fs::permissions(d.Sub("new/script"), fs::perms(0755));  // mode change only
  fs::create_symlink("libfoo.so.1.2", d.Sub("old/lib/libfoo.so"));
  fs::create_symlink("libfoo.so.1.3", d.Sub("new/lib/libfoo.so"));
  fs::create_symlink("engines", d.Sub("old/lib/eng"));
  fs::create_symlink("engines", d.Sub("new/lib/eng"));
}

TEST(TreePatchTest, RoundTripsEveryKindOfChange) {
  TestDir d;
  MakeTrees(d);
  Env* env = Env::Default();
  auto stats = BuildTreePatch(env, d.Sub("old"), d.Sub("new"), d.Sub("p.qpatch"), Fast());
  ASSERT_TRUE(stats.ok()) << stats.error().ToString();
  EXPECT_EQ(stats->paths_deleted, 4u);  // gone/, gone/file, lib/moved, lib/libfoo.so.1.2
  ASSERT_TRUE(ApplyPatch(env, d.Sub("old"), d.Sub("p.qpatch"), d.Sub("out"), {}).ok());
  auto expected = ScanTree(env, d.Sub("new"));
  auto got = ScanTree(env, d.Sub("out"));
  ASSERT_TRUE(expected.ok() && got.ok());
  EXPECT_EQ(ManifestDigest(*expected), ManifestDigest(*got));
  EXPECT_EQ(ReadTestFile(d.Sub("out/lib/libfoo.so.1.3")),
            ReadTestFile(d.Sub("new/lib/libfoo.so.1.3")));
  EXPECT_EQ(fs::read_symlink(d.Sub("out/lib/libfoo.so")).string(), "libfoo.so.1.3");

  // The rename was paired with its predecessor: a delta, not the whole file.
  auto patch = env->NewRandomAccessFile(d.Sub("p.qpatch"));
  auto header = DecodePatchHeader(**patch);
  ASSERT_TRUE(header.ok());
  bool saw_delta = false, saw_copy = false, saw_mode = false;
  for (const auto& r : header->records) {
    if (r.op == RecordOp::kDelta && r.path == "lib/libfoo.so.1.3") {
      EXPECT_EQ(r.source, "lib/libfoo.so.1.2");
      EXPECT_LT(r.payload_length, 1000u);
      saw_delta = true;
    }
    if (r.op == RecordOp::kCopy) saw_copy = r.source == "lib/moved";
    if (r.op == RecordOp::kMode) saw_mode = r.path == "script";
  }
  EXPECT_TRUE(saw_delta && saw_copy && saw_mode);
}

// A sink that keeps the applied tree in memory.
class MemoryTreeSink final : public TreeSink {
 public:
  Status MakeDirectory(const std::string& path, std::uint32_t mode) override {
    dirs[path] = mode;
    return OkStatus();
  }
  Status MakeSymlink(const std::string& path, const std::string& target) override {
    links[path] = target;
    return OkStatus();
  }
  Result<bool> LinkFile(const std::string&, const std::string&) override { return false; }
  Result<std::unique_ptr<WritableFile>> NewFile(const std::string& path) override {
    return std::unique_ptr<WritableFile>(std::make_unique<VectorSink>(&files[path]));
  }
  Status SetFileMode(const std::string& path, std::uint32_t mode) override {
    modes[path] = mode;
    return OkStatus();
  }
  std::map<std::string, std::uint32_t> dirs, modes;
  std::map<std::string, std::string> links;
  std::map<std::string, std::vector<std::uint8_t>> files;
};

TEST(TreePatchTest, TheApplierWritesOnlyThroughItsCallersSink) {
  TestDir d;
  MakeTrees(d);
  Env* env = Env::Default();
  ASSERT_TRUE(BuildTreePatch(env, d.Sub("old"), d.Sub("new"), d.Sub("p"), Fast()).ok());
  auto before = ScanTree(env, d.path());
  ASSERT_TRUE(before.ok());
  auto patch = env->NewRandomAccessFile(d.Sub("p"));
  ASSERT_TRUE(patch.ok());
  auto header = DecodePatchHeader(**patch);
  ASSERT_TRUE(header.ok());
  MemoryTreeSink sink;
  Status s = ApplyPatchTo(env, d.Sub("old"), **patch, *header, sink);
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  auto after = ScanTree(env, d.path());
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(ManifestDigest(*before), ManifestDigest(*after)) << "nothing written to disk";
  auto expected = ScanTree(env, d.Sub("new"));
  ASSERT_TRUE(expected.ok());
  for (const auto& e : *expected) {
    if (e.type == EntryType::kFile) {
      ASSERT_EQ(sink.files.count(e.path), 1u) << e.path;
      EXPECT_EQ(Sha256Of(sink.files[e.path]), e.sha256) << e.path;
      EXPECT_EQ(sink.modes[e.path], e.mode) << e.path;
    } else if (e.type == EntryType::kSymlink) {
      EXPECT_EQ(sink.links[e.path], fs::read_symlink(d.Sub("new/" + e.path)).string());
    } else {
      EXPECT_EQ(sink.dirs.count(e.path), 1u) << e.path;
    }
  }
}

TEST(TreePatchTest, HeldSourcesAreTheBytesThePatchReads) {
  TestDir d;
  MakeTrees(d);
  Env* env = Env::Default();
  ASSERT_TRUE(BuildTreePatch(env, d.Sub("old"), d.Sub("new"), d.Sub("p"), Fast()).ok());
  auto patch = env->NewRandomAccessFile(d.Sub("p"));
  ASSERT_TRUE(patch.ok());
  auto header = DecodePatchHeader(**patch);
  ASSERT_TRUE(header.ok());
  const std::set<std::string> sources = PatchSources(*header);
  // The renamed library (delta), the moved file (copy), the script (mode only).
  EXPECT_EQ(sources, (std::set<std::string>{"lib/libfoo.so.1.2", "lib/moved", "script"}));

  // A budget that holds the small sources but not the 100,000-byte library.
  HeldSources small(sources, 20000);
  SourceTree source;
  source.name = "old";
  source.locate = [&](const std::string& path) { return ResolveEntryPath(d.Sub("old"), path); };
  source.held = &small;
  auto manifest = ScanTree(env, d.Sub("old"), &small);
  ASSERT_TRUE(manifest.ok());
  EXPECT_FALSE(small.Find("lib/libfoo.so.1.2").has_value());
  ASSERT_TRUE(small.Find("lib/moved").has_value());
  const std::span<const std::uint8_t> moved = *small.Find("lib/moved");
  EXPECT_EQ(std::vector<std::uint8_t>(moved.begin(), moved.end()), Bytes(RandomText(3000, 3)));
  EXPECT_FALSE(small.Find("lib/engines/same.so").has_value()) << "not a source: never held";
  EXPECT_EQ(small.held_bytes(), 3000u + 10u);

  // Everything held: the patch reads the held files, not the paths. A file replaced after
  // the scan (a new file renamed over it, as packaging tools do) goes unseen.
  HeldSources all(sources, 1 << 20);
  source.held = &all;
  auto scanned = ScanTree(env, d.Sub("old"), &all);
  ASSERT_TRUE(scanned.ok());
  source.manifest = *scanned;
  EXPECT_EQ(ManifestDigest(*scanned), ManifestDigest(*manifest));
  const std::string original = ReadTestFile(d.Sub("old/lib/libfoo.so.1.2"));
  WriteTestFile(d.Sub("old/lib/replacement"), RandomText(100000, 9));
  ASSERT_EQ(::rename(d.Sub("old/lib/replacement").c_str(), d.Sub("old/lib/libfoo.so.1.2").c_str()),
            0);
  MemoryTreeSink sink;
  Status s = ApplyPatchFrom(env, source, **patch, *header, sink);
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_EQ(sink.files["lib/libfoo.so.1.3"], Bytes(ReadTestFile(d.Sub("new/lib/libfoo.so.1.3"))));

  // Written in place instead, the damage shows through the mapping of a held file: what the
  // patch produces is refused by the manifest, nothing is taken on trust.
  WriteTestFile(d.Sub("old/lib/libfoo.so.1.2"), original);
  HeldSources mapped(sources, 1 << 20);
  source.held = &mapped;
  ASSERT_TRUE(ScanTree(env, d.Sub("old"), &mapped).ok());
  WriteTestFile(d.Sub("old/lib/libfoo.so.1.2"), RandomText(100000, 9));
  MemoryTreeSink damaged;
  EXPECT_FALSE(ApplyPatchFrom(env, source, **patch, *header, damaged).ok());

  // Not held: the same damage is read from disk and refused.
  source.held = nullptr;
  MemoryTreeSink refused;
  EXPECT_FALSE(ApplyPatchFrom(env, source, **patch, *header, refused).ok());
}

TEST(TreePatchTest, SourcesHeldEarlyAreWhatTheScanFindsAndOnlyInsideTheTree) {
  TestDir d;
  MakeTrees(d);
  Env* env = Env::Default();
  const std::set<std::string> wanted = {"lib/moved",   "lib/eng/same.so", "lib/libfoo.so",
                                        "lib/engines", "nowhere",         "../old/lib/moved"};
  HeldSources early(wanted, 1 << 20);
  ASSERT_TRUE(early.HoldEarly(env, d.Sub("old"), "lib/moved").ok());
  // A symlinked parent, a symlink, a directory, nothing, a path leaving the tree: the scan
  // would not hash these as files, so neither is anything held early.
  EXPECT_FALSE(early.HoldEarly(env, d.Sub("old"), "lib/eng/same.so").ok());
  EXPECT_FALSE(early.HoldEarly(env, d.Sub("old"), "lib/libfoo.so").ok());
  EXPECT_FALSE(early.HoldEarly(env, d.Sub("old"), "lib/engines").ok());
  EXPECT_FALSE(early.HoldEarly(env, d.Sub("old"), "nowhere").ok());
  EXPECT_FALSE(early.HoldEarly(env, d.Sub("old"), "../old/lib/moved").ok());
  EXPECT_EQ(early.held_bytes(), 3000u);
  // The scan takes the early bytes (the file is not read again) and finds the same tree.
  ReadCountingEnv counting(env);
  auto scanned = ScanTree(&counting, d.Sub("old"), &early);
  ASSERT_TRUE(scanned.ok());
  EXPECT_EQ(counting.BytesRead(d.Sub("old/lib/moved")), 0u);
  EXPECT_EQ(ManifestDigest(*scanned), ManifestDigest(*ScanTree(env, d.Sub("old"))));
  EXPECT_EQ(early.held_bytes(), 3000u);
}

TEST(TreePatchTest, LinkedUnchangedFilesShareInodes) {
  TestDir d;
  MakeTrees(d);
  Env* env = Env::Default();
  ASSERT_TRUE(BuildTreePatch(env, d.Sub("old"), d.Sub("new"), d.Sub("p"), Fast()).ok());
  ApplyOptions link;
  link.link_unchanged = true;
  ASSERT_TRUE(ApplyPatch(env, d.Sub("old"), d.Sub("p"), d.Sub("out"), link).ok());
  EXPECT_EQ(env->Stat(d.Sub("out/lib/engines/same.so"))->inode,
            env->Stat(d.Sub("old/lib/engines/same.so"))->inode);
}

TEST(TreePatchTest, FilePatchRoundTrip) {
  TestDir d;
  WriteTestFile(d.Sub("a"), RandomText(50000, 4));
  std::string b = ReadTestFile(d.Sub("a"));
  b.replace(100, 5, "XXXXX");
  WriteTestFile(d.Sub("b"), b);
  Env* env = Env::Default();
  ASSERT_TRUE(BuildFilePatch(env, d.Sub("a"), d.Sub("b"), d.Sub("p"), Fast()).ok());
  ASSERT_TRUE(ApplyPatch(env, d.Sub("a"), d.Sub("p"), d.Sub("c"), {}).ok());
  EXPECT_EQ(ReadTestFile(d.Sub("c")), b);
  // A file patch takes the compact header (version 4): source digest, mode, size and hash of
  // the one file, one record of op, offset and length; an 8-byte check.
  std::string p = ReadTestFile(d.Sub("p"));
  ASSERT_EQ(p[8], kQpatchVersionCompact);
  std::vector<std::uint8_t> bytes(p.begin(), p.end());
  MemoryFile f(bytes);
  auto h = DecodePatchHeader(f);
  ASSERT_TRUE(h.ok()) << h.error().ToString();
  ASSERT_EQ(h->manifest.size(), 1u);
  EXPECT_EQ(h->manifest[0].path, ".");
  EXPECT_EQ(h->result_digest, ManifestDigest(*ScanSingleFile(env, d.Sub("b"))));
  ASSERT_EQ(h->records.size(), 1u);
  EXPECT_EQ(h->records[0].source, ".");
  EXPECT_LE(h->payload_start, 16u + 32 + 2 + 3 + 32 + 1 + 1 + 2 + 3 + 8);
}

TEST(TreePatchTest, WrongSourceIsRefusedAndLeavesNothing) {
  TestDir d;
  MakeTrees(d);
  Env* env = Env::Default();
  ASSERT_TRUE(BuildTreePatch(env, d.Sub("old"), d.Sub("new"), d.Sub("p"), Fast()).ok());
  WriteTestFile(d.Sub("old/lib/engines/same.so"), "modified behind our back");
  Status s = ApplyPatch(env, d.Sub("old"), d.Sub("p"), d.Sub("out"), {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kVerificationFailed);
  EXPECT_NE(s.error().message().find("is not the tree this patch applies to"), std::string::npos);
  EXPECT_FALSE(TestPathExists(d.Sub("out")));
}

TEST(TreePatchTest, RefusesToOverwriteOutput) {
  TestDir d;
  MakeTrees(d);
  Env* env = Env::Default();
  ASSERT_TRUE(BuildTreePatch(env, d.Sub("old"), d.Sub("new"), d.Sub("p"), Fast()).ok());
  fs::create_directory(d.Sub("out"));
  EXPECT_EQ(ApplyPatch(env, d.Sub("old"), d.Sub("p"), d.Sub("out"), {}).error().code(),
            ErrorCode::kAlreadyExists);
  EXPECT_EQ(BuildTreePatch(env, d.Sub("old"), d.Sub("new"), d.Sub("p"), Fast()).error().code(),
            ErrorCode::kAlreadyExists);
}

// Every single-byte corruption and every truncation point of a patch is an error or (for
// payload bytes that happen not to matter) a verified result: never a wrong tree, and never
// a partial output left behind.
TEST(TreePatchTest, CorruptAndTruncatedPatchesNeverProduceAWrongTree) {
  TestDir d;
  MakeTrees(d);
  Env* env = Env::Default();
  ASSERT_TRUE(BuildTreePatch(env, d.Sub("old"), d.Sub("new"), d.Sub("p"), Fast()).ok());
  std::string good = ReadTestFile(d.Sub("p"));
  auto want = ManifestDigest(*ScanTree(env, d.Sub("new")));
  std::mt19937 rng(5);
  int errors = 0;
  for (int i = 0; i < 120; ++i) {
    std::string bad = good;
    if (i % 2 == 0) {
      bad.resize(rng() % good.size());
    } else {
      bad[rng() % bad.size()] ^= static_cast<char>(1 + rng() % 255);
    }
    WriteTestFile(d.Sub("bad"), bad);
    Status s = ApplyPatch(env, d.Sub("old"), d.Sub("bad"), d.Sub("out"), {});
    if (s.ok()) {
      EXPECT_EQ(ManifestDigest(*ScanTree(env, d.Sub("out"))), want);
      fs::remove_all(d.Sub("out"));
    } else {
      ++errors;
      EXPECT_FALSE(TestPathExists(d.Sub("out")));
    }
    auto names = *env->ListDir(d.path());
    for (const auto& n : names) EXPECT_EQ(n.find("qp-partial"), std::string::npos) << n;
  }
  EXPECT_GT(errors, 100);
}

// MakeTrees' patch, built at d/p; its bytes.
std::string BuildTestPatch(const TestDir& d) {
  MakeTrees(d);
  auto built = BuildTreePatch(Env::Default(), d.Sub("old"), d.Sub("new"), d.Sub("p"), Fast());
  EXPECT_TRUE(built.ok()) << built.error().ToString();
  return ReadTestFile(d.Sub("p"));
}

TEST(TreePatchTest, UnknownVersionIsUnsupported) {
  TestDir d;
  Env* env = Env::Default();
  std::string p = BuildTestPatch(d);
  p[8] = 6;
  WriteTestFile(d.Sub("p2"), p);
  Status s = ApplyPatch(env, d.Sub("old"), d.Sub("p2"), d.Sub("out"), {});
  EXPECT_EQ(s.error().code(), ErrorCode::kUnsupported);
  EXPECT_NE(s.error().message().find("version 6"), std::string::npos);
}

// Tree patches stay at version 2 (agents that read 2 take them); the compact version 4 header
// reads back the same tree patch, with the result digest taken from the manifest.
TEST(TreePatchTest, CompactHeaderRoundTripsATreePatch) {
  TestDir d;
  Env* env = Env::Default();
  std::string p = BuildTestPatch(d);
  ASSERT_EQ(p[8], 2);
  std::vector<std::uint8_t> original(p.begin(), p.end());
  MemoryFile f(original);
  auto h = DecodePatchHeader(f);
  ASSERT_TRUE(h.ok()) << h.error().ToString();
  PatchHeader compact = *h;
  compact.version = kQpatchVersionCompact;
  auto bytes = EncodePatchHeader(compact);
  EXPECT_EQ(bytes.size() + 32 + 24, h->payload_start);  // no result digest; 8-byte check
  bytes.insert(bytes.end(), p.begin() + static_cast<std::ptrdiff_t>(h->payload_start), p.end());
  MemoryFile g(bytes);
  auto back = DecodePatchHeader(g);
  ASSERT_TRUE(back.ok()) << back.error().ToString();
  EXPECT_EQ(back->result_digest, h->result_digest);
  EXPECT_EQ(back->manifest.size(), h->manifest.size());
  EXPECT_EQ(back->records.size(), h->records.size());
  WriteTestFile(d.Sub("p4"), std::string(bytes.begin(), bytes.end()));
  Status s = ApplyPatch(env, d.Sub("old"), d.Sub("p4"), d.Sub("out"), {});
  ASSERT_TRUE(s.ok()) << s.error().ToString();
  EXPECT_EQ(ManifestDigest(*ScanTree(env, d.Sub("out"))), h->result_digest);
  // Its 8-byte check still catches damage to the header.
  bytes[20] ^= 1;
  MemoryFile bad(bytes);
  auto damaged = DecodePatchHeader(bad);
  ASSERT_FALSE(damaged.ok());
  EXPECT_NE(damaged.error().message().find("damaged"), std::string::npos);
}

TEST(TreePatchTest, VersionOnePatchesStillApply) {
  // Version 2 only added a transform and a record op; a version 1 header (rehashed) still reads.
  TestDir d;
  Env* env = Env::Default();
  std::string p = BuildTestPatch(d);
  ASSERT_EQ(p[8], 2);
  p[8] = 1;
  std::uint32_t body = static_cast<std::uint8_t>(p[12]) | static_cast<std::uint8_t>(p[13]) << 8 |
                       static_cast<std::uint8_t>(p[14]) << 16 |
                       static_cast<std::uint32_t>(static_cast<std::uint8_t>(p[15])) << 24;
  Sha256Digest h = Sha256Of(std::string_view(p).substr(0, 16 + body));
  p.replace(16 + body, 32, std::string(h.begin(), h.end()));
  WriteTestFile(d.Sub("p1"), p);
  Status s = ApplyPatch(env, d.Sub("old"), d.Sub("p1"), d.Sub("out"), {});
  ASSERT_TRUE(s.ok()) << s.error().ToString();
}

// Hand-made headers that try to escape the output directory.
TEST(TreePatchTest, PathsThatEscapeTheTreeAreRejected) {
  auto header_with = [](Manifest m) {
    PatchHeader h;
    h.manifest = std::move(m);
    return EncodePatchHeader(h);
  };
  ManifestEntry file{"x", EntryType::kFile, 0644, 0, {}};
  for (std::string bad : {"../etc/passwd", "/etc/passwd", "a/../../b", "a//b", "./a", "", "a/.",
                          "evil\x1b]0;title\x07", "two\nlines"}) {
    file.path = bad;
    auto bytes = header_with({file});
    MemoryFile f(bytes);
    auto r = DecodePatchHeader(f);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kCorrupt);
    EXPECT_NE(r.error().message().find("unsafe path"), std::string::npos) << r.error().message();
  }
  // A file under a symlink (or under anything that is not a directory of the manifest).
  ManifestEntry link{"lib", EntryType::kSymlink, 0777, 4, {}};
  ManifestEntry under{"lib/x", EntryType::kFile, 0644, 0, {}};
  auto bytes = header_with({link, under});
  MemoryFile f(bytes);
  auto r = DecodePatchHeader(f);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message().find("parent is not a directory"), std::string::npos);
  // Unsorted manifests are not canonical.
  ManifestEntry b{"b", EntryType::kFile, 0644, 0, {}}, a{"a", EntryType::kFile, 0644, 0, {}};
  auto unsorted = header_with({b, a});
  MemoryFile u(unsorted);
  EXPECT_FALSE(DecodePatchHeader(u).ok());
}

// A symlink target with a NUL byte: its hash covers the whole target, but symlink(2) would
// store only the part before the NUL. Refused.
TEST(TreePatchTest, ASymlinkTargetWithANulByteIsRefused) {
  TestDir d;
  ASSERT_TRUE(MakeDirs(Env::Default(), d.Sub("old")).ok());
  auto old_m = ScanTree(Env::Default(), d.Sub("old"));
  ASSERT_TRUE(old_m.ok());
  const std::string target("/etc/shadow\0harmless", 21);
  PatchHeader h;
  h.source_digest = ManifestDigest(*old_m);
  h.manifest = {ManifestEntry{"link", EntryType::kSymlink, 0777, target.size(), Sha256Of(target)}};
  h.result_digest = ManifestDigest(h.manifest);
  h.records = {PatchRecord{RecordOp::kSymlink, "link", "", 0, target.size()}};
  auto bytes = EncodePatchHeader(h);
  bytes.insert(bytes.end(), target.begin(), target.end());
  WriteTestFile(d.Sub("p"), std::string(bytes.begin(), bytes.end()));
  Status s = ApplyPatch(Env::Default(), d.Sub("old"), d.Sub("p"), d.Sub("out"), {});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("NUL"), std::string::npos) << s.error().ToString();
  EXPECT_FALSE(TestPathExists(d.Sub("out")));
}

TEST(TreePatchTest, ENoSpaceDuringApplyLeavesNothingBehind) {
  TestDir d, shadow;
  MakeTrees(d);
  ASSERT_TRUE(BuildTreePatch(Env::Default(), d.Sub("old"), d.Sub("new"), d.Sub("p"), Fast()).ok());
  int failures = 0;
  for (int op = 1;; op += 3) {
    FaultInjectionEnv env(Env::Default(), shadow.path());
    env.FailFromOperation(op, ENOSPC);
    Status s = ApplyPatch(&env, d.Sub("old"), d.Sub("p"), d.Sub("out"), {});
    if (s.ok()) break;
    ++failures;
    EXPECT_EQ(s.error().code(), ErrorCode::kNoSpace) << s.error().ToString();
    EXPECT_FALSE(TestPathExists(d.Sub("out")));
    std::vector<std::string> names = *Env::Default()->ListDir(d.path());
    for (const auto& n : names) {
      EXPECT_EQ(n.find("qp-partial"), std::string::npos) << "op " << op;
    }
  }
  EXPECT_GT(failures, 5);
}

}  // namespace
}  // namespace qp::delta
