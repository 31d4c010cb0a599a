#include "delta/file_delta.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <random>

#include "core/memory_file.h"
#include "delta/byte_io.h"
#include "delta/codec.h"
#include "delta/file_delta_format.h"
#include "delta/predictor.h"
#include "delta/predictor_testing.h"
#include "delta/suffix_index.h"
#include "delta/target_table.h"

namespace qp::delta {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes Random(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  Bytes v(n);
  for (auto& b : v) b = static_cast<std::uint8_t>(rng());
  return v;
}

FileDiffOptions FastOptions() {
  FileDiffOptions o;
  o.compress.zstd_level = 3;
  o.compress.lzma_extreme = false;
  return o;
}

void ExpectRoundTrip(const Bytes& old_data, const Bytes& new_data,
                     std::size_t* patch_size = nullptr) {
  auto patch = DiffFile(old_data, new_data, FastOptions());
  ASSERT_TRUE(patch.ok()) << patch.error().ToString();
  auto rebuilt = ApplyFileDeltaToMemory(old_data, *patch);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.error().ToString();
  ASSERT_EQ(rebuilt->size(), new_data.size());
  EXPECT_TRUE(*rebuilt == new_data);
  if (patch_size) *patch_size = patch->size();
}

TEST(FileDeltaTest, EmptyFiles) {
  ExpectRoundTrip({}, {});
  ExpectRoundTrip({}, Random(1000, 1));
  ExpectRoundTrip(Random(1000, 2), {});
}

TEST(FileDeltaTest, IdenticalFilesGiveATinyPatch) {
  Bytes a = Random(300000, 3);
  std::size_t size = 0;
  ExpectRoundTrip(a, a, &size);
  EXPECT_LT(size, 100u);
}

TEST(FileDeltaTest, RandomDataUnrelated) { ExpectRoundTrip(Random(50000, 4), Random(60000, 5)); }

TEST(FileDeltaTest, AppendedShiftedAndInterleavedChanges) {
  Bytes base = Random(200000, 6);
  Bytes appended = base;
  Bytes tail = Random(5000, 7);
  appended.insert(appended.end(), tail.begin(), tail.end());
  std::size_t size = 0;
  ExpectRoundTrip(base, appended, &size);
  EXPECT_LT(size, 6000u);

  Bytes shifted = Random(777, 8);
  shifted.insert(shifted.end(), base.begin(), base.end());
  ExpectRoundTrip(base, shifted, &size);
  EXPECT_LT(size, 2000u);

  Bytes interleaved = base;
  std::mt19937 rng(9);
  for (int i = 0; i < 200; ++i) interleaved[rng() % interleaved.size()] ^= 0x5a;
  for (int i = 0; i < 20; ++i) {
    auto at = interleaved.begin() + static_cast<std::ptrdiff_t>(rng() % interleaved.size());
    interleaved.insert(at, 17, static_cast<std::uint8_t>(i));
  }
  ExpectRoundTrip(base, interleaved, &size);
  EXPECT_LT(size, 8000u);
}

TEST(FileDeltaTest, LargeInputUsesParallelSlices) {
  Bytes base = Random(9 << 20, 10);
  Bytes changed = base;
  for (std::size_t i = 0; i < changed.size(); i += 100000) changed[i] ^= 1;
  FileDiffOptions whole = FastOptions();
  whole.near_identical = false;  // the whole-file matcher, in slices
  auto patch = DiffFile(base, changed, whole);
  ASSERT_TRUE(patch.ok());
  EXPECT_LT(patch->size(), 20000u);
  auto rebuilt = ApplyFileDeltaToMemory(base, *patch);
  ASSERT_TRUE(rebuilt.ok());
  EXPECT_TRUE(*rebuilt == changed);
}

// Nearly identical files take the short path: anchors by hashing, gaps matched locally.
// Same-place edits, insertions and a deletion (alignments change), and a moved block.
TEST(NearIdenticalTest, FindsAnchorsAndMatchesOnlyTheGaps) {
  Bytes old_data = Random(4 << 20, 11);
  Bytes new_data = old_data;
  std::mt19937 rng(12);
  for (int i = 0; i < 40; ++i) new_data[rng() % new_data.size()] ^= 0x5a;
  for (int i = 0; i < 8; ++i) {
    std::size_t at = rng() % new_data.size();
    Bytes ins = Random(1 + rng() % 300, 100 + i);
    new_data.insert(new_data.begin() + static_cast<std::ptrdiff_t>(at), ins.begin(), ins.end());
  }
  new_data.erase(new_data.begin() + 1000000, new_data.begin() + 1000500);
  std::vector<Control> controls;
  ASSERT_TRUE(MatchNearIdentical(old_data, new_data, &controls));
  // The controls cover the new file exactly and read inside the old one.
  std::uint64_t covered = 0;
  for (const Control& c : controls) {
    ASSERT_GE(c.old_pos, 0);
    ASSERT_LE(static_cast<std::uint64_t>(c.old_pos) + c.add, old_data.size());
    covered += c.add + c.copy;
  }
  EXPECT_EQ(covered, new_data.size());
  std::size_t size = 0;
  ExpectRoundTrip(old_data, new_data, &size);
  EXPECT_LT(size, 8000u);  // the edits' bytes and the inserted ones, not the file
}

TEST(NearIdenticalTest, UnrelatedOrSmallFilesTakeTheWholePath) {
  std::vector<Control> controls;
  EXPECT_FALSE(MatchNearIdentical(Random(4 << 20, 13), Random(4 << 20, 14), &controls));
  EXPECT_FALSE(MatchNearIdentical(Random(100000, 15), Random(100000, 15), &controls));
  EXPECT_TRUE(controls.empty());
}

// Where nothing moved, no prediction is recorded (it would predict every byte as it was),
// and the applier runs none either.
TEST(NearIdenticalTest, AnElfFileWhoseBlocksDidNotMoveCarriesNoTransform) {
  Bytes old_data = Random(2 << 20, 16);
  WriteElfHeader(old_data, {{0, 0x400000, old_data.size()}});
  Bytes new_data = old_data;
  for (std::size_t i = 5000; i < new_data.size(); i += 300000) new_data[i] ^= 1;
  auto patch = DiffFile(old_data, new_data, FastOptions());
  ASSERT_TRUE(patch.ok());
  ASSERT_FALSE(patch->empty());
  EXPECT_EQ((*patch)[0], kTransformNone);
  auto rebuilt = ApplyFileDeltaToMemory(old_data, *patch);
  ASSERT_TRUE(rebuilt.ok());
  EXPECT_TRUE(*rebuilt == new_data);
}

// Applying counts what a payload needs (windows, blocks, learned table) before it costs
// that much, and refuses one over its limit; the differ writes a payload that would be over
// its limit without prediction.
TEST(FileDeltaTest, ApplyMemoryIsCountedAndLimited) {
  Bytes old_data = Random(2 << 20, 17);
  WriteElfHeader(old_data, {{0, 0x400000, old_data.size()}});
  Bytes new_data = old_data;
  Bytes ins = Random(100, 18);
  new_data.insert(new_data.begin() + (1 << 20), ins.begin(), ins.end());  // blocks move
  auto patch = DiffFile(old_data, new_data, FastOptions());
  ASSERT_TRUE(patch.ok());
  ASSERT_EQ((*patch)[0], kTransformX86Learned);
  MemoryFile old_file(old_data), patch_file(*patch);
  auto header = ReadFileDeltaHeader(patch_file, 0, patch->size());
  ASSERT_TRUE(header.ok());
  // Without blocks: the windows, the learned table (16,384 slots for 2 MiB) and buffers.
  const std::uint64_t need = ApplyMemoryNeeded(*header, 0);
  EXPECT_EQ(ApplyMemoryNeeded(*header, 10) - need, 10 * (sizeof(Predictor::Block) + 4));
  Bytes out;
  VectorSink sink(&out);
  auto refused = ApplyFileDelta(old_file, patch_file, 0, patch->size(), sink, need - 1);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::kTooLarge);
  EXPECT_TRUE(out.empty());
  ASSERT_TRUE(ApplyFileDelta(old_file, patch_file, 0, patch->size(), sink, need + (1 << 20)).ok());
  EXPECT_TRUE(out == new_data);

  // Below what prediction needs (its table alone is 128 KiB), above what the windows need.
  FileDiffOptions tight = FastOptions();
  tight.apply_memory = need - 1;
  auto lean = DiffFile(old_data, new_data, tight);
  ASSERT_TRUE(lean.ok()) << lean.error().ToString();
  EXPECT_EQ((*lean)[0], kTransformNone);
  auto rebuilt = ApplyFileDeltaToMemory(old_data, *lean);
  ASSERT_TRUE(rebuilt.ok());
  EXPECT_TRUE(*rebuilt == new_data);
}

// The suffix search returns a real match at least as long as one planted in the old file,
// for each size of prefix table (1, 2 and 3 bytes), and the longest one on a small file
// checked by brute force.
TEST(SuffixIndexTest, SearchFindsTheLongestMatch) {
  for (std::size_t n : {std::size_t{3000}, std::size_t{200000}, std::size_t{5} << 20}) {
    Bytes old_data(n);
    std::mt19937 rng(static_cast<unsigned>(n));
    for (auto& b : old_data) b = static_cast<std::uint8_t>("ACGT\0\xff"[rng() % 6]);
    SuffixIndex index(old_data);
    for (int t = 0; t < 300; ++t) {
      const std::size_t at = rng() % (n - 64), planted = 1 + rng() % 60;
      Bytes target(old_data.begin() + static_cast<std::ptrdiff_t>(at),
                   old_data.begin() + static_cast<std::ptrdiff_t>(at + planted));
      for (int k = 0; k < 8; ++k) target.push_back(static_cast<std::uint8_t>(rng()));
      std::int64_t pos = -1;
      const std::int64_t len = index.Search(target, &pos);
      ASSERT_GE(len, static_cast<std::int64_t>(planted));
      ASSERT_GE(pos, 0);
      ASSERT_LE(static_cast<std::size_t>(pos + len), n);
      ASSERT_TRUE(std::equal(target.begin(), target.begin() + len, old_data.begin() + pos));
      if (n <= 3000) {
        std::int64_t best = 0;
        for (std::size_t p = 0; p < n; ++p) {
          std::int64_t l = 0;
          while (p + static_cast<std::size_t>(l) < n &&
                 static_cast<std::size_t>(l) < target.size() &&
                 old_data[p + static_cast<std::size_t>(l)] == target[static_cast<std::size_t>(l)])
            ++l;
          best = std::max(best, l);
        }
        ASSERT_EQ(len, best);
      }
    }
  }
}

// A synthetic x86-64 "binary": calls whose targets move by a different amount than the
// callers. With prediction the differences vanish.
// The matcher's normalized copies: calls to one function read alike wherever they are, and
// a copy of part of the file (a slice) is that part of the whole file's copy.
TEST(FileDeltaTest, X86NormalizedCopiesOfPartsMatchTheWhole) {
  Bytes d(0x3000, 0x90);
  WriteElfHeader(d, {{0, 0, 0x3000}});
  auto call = [&](std::size_t at, std::size_t target) {
    d[at] = 0xE8;
    const auto disp = static_cast<std::int32_t>(target - (at + 5));
    std::memcpy(&d[at + 1], &disp, 4);
  };
  call(0x1000, 0x2000);
  call(0x1100, 0x2000);
  call(0x1200, 0x2800);
  for (std::size_t k = 0; k < 8; ++k) d[0x2800 + k] = static_cast<std::uint8_t>(0x50 + k);
  const Bytes whole = NormalizeX86Code(d, 0, d.size());
  ASSERT_EQ(whole.size(), d.size());
  EXPECT_FALSE(std::equal(d.begin() + 0x1001, d.begin() + 0x1005, d.begin() + 0x1101));
  EXPECT_TRUE(std::equal(whole.begin() + 0x1001, whole.begin() + 0x1005, whole.begin() + 0x1101));
  EXPECT_FALSE(std::equal(whole.begin() + 0x1001, whole.begin() + 0x1005, whole.begin() + 0x1201));
  const Bytes part = NormalizeX86Code(d, 0x0F00, 0x1103);  // ends inside the second call
  ASSERT_EQ(part.size(), 0x203u);
  EXPECT_TRUE(std::equal(part.begin(), part.end(), whole.begin() + 0x0F00));
  EXPECT_TRUE(NormalizeX86Code(d, 0x4000, 0x5000).empty());
}

TEST(FileDeltaTest, X86PredictionRemovesMovedCallDisplacements) {
  Bytes old_data(400000, 0x90);
  const std::uint8_t elf[] = {0x7f, 'E', 'L', 'F', 2, 1, 1, 0};
  std::copy(std::begin(elf), std::end(elf), old_data.begin());
  old_data[18] = 62;  // e_machine = EM_X86_64
  old_data[19] = 0;
  std::mt19937 rng(11);
  for (std::size_t i = 64; i < 200000; i += 8 + rng() % 16)
    old_data[i] = static_cast<std::uint8_t>(rng());
  // Calls from the first half into the second half.
  std::vector<std::size_t> call_sites;
  for (std::size_t i = 1000; i < 190000; i += 997) {
    old_data[i] = 0xE8;
    std::int32_t target = static_cast<std::int32_t>(250000 + (i * 7) % 100000);
    std::int32_t disp = target - static_cast<std::int32_t>(i + 5);
    std::memcpy(&old_data[i + 1], &disp, 4);
    call_sites.push_back(i);
  }
  for (std::size_t i = 200000; i < old_data.size(); ++i)
    old_data[i] = static_cast<std::uint8_t>(rng());
  // New: 3000 bytes inserted at 220000 (inside the callee area); calls re-aimed.
  Bytes new_data(old_data.begin(), old_data.begin() + 220000);
  Bytes ins = Random(3000, 12);
  new_data.insert(new_data.end(), ins.begin(), ins.end());
  new_data.insert(new_data.end(), old_data.begin() + 220000, old_data.end());
  for (std::size_t i : call_sites) {
    std::int32_t disp;
    std::memcpy(&disp, &old_data[i + 1], 4);
    std::int64_t target = static_cast<std::int64_t>(i) + 5 + disp;
    if (target >= 220000) target += 3000;
    std::int32_t nd = static_cast<std::int32_t>(target - static_cast<std::int64_t>(i) - 5);
    std::memcpy(&new_data[i + 1], &nd, 4);
  }
  FileDiffOptions with = FastOptions(), without = FastOptions();
  without.executable_transform = false;
  auto p1 = DiffFile(old_data, new_data, with);
  auto p0 = DiffFile(old_data, new_data, without);
  ASSERT_TRUE(p1.ok() && p0.ok());
  EXPECT_EQ((*p1)[0], 2);  // transform in use: learned x86 prediction
  auto rebuilt = ApplyFileDeltaToMemory(old_data, *p1);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.error().ToString();
  EXPECT_TRUE(*rebuilt == new_data);
  EXPECT_LT(p1->size(), p0->size());

  // Format 1's branch-only prediction is still made on request and still applies.
  FileDiffOptions branches = FastOptions();
  branches.x86_level = 1;
  auto pb = DiffFile(old_data, new_data, branches);
  ASSERT_TRUE(pb.ok());
  EXPECT_EQ((*pb)[0], 1);
  auto rebuilt1 = ApplyFileDeltaToMemory(old_data, *pb);
  ASSERT_TRUE(rebuilt1.ok()) << rebuilt1.error().ToString();
  EXPECT_TRUE(*rebuilt1 == new_data);
  EXPECT_LT(pb->size(), p0->size());
}

TEST(X86PredictorTest, LearnsTargetsTheBlocksMispredict) {
  // A PLT-like table whose entries were reordered: the blocks map every old entry to the
  // same place, but each call now goes to the next entry. Only the first call to each
  // entry can be wrong once the predictor learns.
  Bytes old_data(300000, 0x90);
  WriteElfHeader(old_data, {{0, 0, 300000}});
  const std::size_t plt = 200000;
  std::mt19937 rng(5);
  std::size_t calls = 0;
  Bytes new_data = old_data;
  for (std::size_t i = 4096; i + 5 < plt; i += 11 + rng() % 7) {
    std::size_t entry = rng() % 40;
    auto put = [&](Bytes& d, std::size_t e) {
      d[i] = 0xE8;
      std::uint32_t disp = static_cast<std::uint32_t>(plt + 16 * e - (i + 5));
      for (int k = 0; k < 4; ++k) d[i + 1 + k] = static_cast<std::uint8_t>(disp >> (8 * k));
    };
    put(old_data, entry);
    put(new_data, entry + 1);
    ++calls;
  }
  std::vector<Control> identity = {Control{old_data.size(), 0, 0}};
  std::size_t branches =
      PredictedDifferences(Transform::kX86Branches, old_data, new_data, identity);
  std::size_t learned = PredictedDifferences(Transform::kX86Learned, old_data, new_data, identity);
  EXPECT_GE(branches, calls);       // every call's displacement differs
  EXPECT_LE(learned, 40u * 4 * 2);  // at most the first call per entry (and per chunk seam)
}

TEST(X86PredictorTest, RipRelativeOperandsFollowMovedData) {
  // Text in the first segment refers to data in a second one (vaddr = offset + 0x1000);
  // the new version inserts 4 KiB before the data, so every [rip+d32] operand changes.
  const std::size_t data_off = 0x30000, size = 0x40000;
  Bytes old_data(size, 0);
  std::mt19937 rng(9);
  for (std::size_t i = 0x1000; i < size; ++i) old_data[i] = static_cast<std::uint8_t>(rng() % 7);
  WriteElfHeader(old_data, {{0, 0, data_off}, {data_off, data_off + 0x1000, size - data_off}});
  std::vector<std::size_t> sites;
  const std::uint8_t forms[][3] = {{0x48, 0x8D, 0x05}, {0x48, 0x8B, 0x15}, {0x4C, 0x8D, 0x3D}};
  for (std::size_t i = 0x1000; i + 7 < 0x20000; i += 40 + rng() % 30) {
    std::copy(std::begin(forms[sites.size() % 3]), std::end(forms[sites.size() % 3]),
              old_data.begin() + static_cast<std::ptrdiff_t>(i));
    std::uint64_t target = data_off + 0x1000 + (rng() % 0x8000);
    std::uint32_t disp = static_cast<std::uint32_t>(target - (i + 7));
    for (int k = 0; k < 4; ++k) old_data[i + 3 + k] = static_cast<std::uint8_t>(disp >> (8 * k));
    sites.push_back(i);
  }
  Bytes new_data(old_data.begin(), old_data.begin() + 0x28000);
  Bytes pad(0x1000, 0xCC);  // cheap to send: the operands are what costs
  new_data.insert(new_data.end(), pad.begin(), pad.end());
  new_data.insert(new_data.end(), old_data.begin() + 0x28000, old_data.end());
  WriteElfHeader(new_data, {{0, 0, data_off + 0x1000},
                            {data_off + 0x1000, data_off + 0x2000, size - data_off}});
  for (std::size_t i : sites) {
    std::uint32_t disp = 0;
    for (int k = 0; k < 4; ++k) disp |= static_cast<std::uint32_t>(new_data[i + 3 + k]) << (8 * k);
    disp += 0x1000;
    for (int k = 0; k < 4; ++k) new_data[i + 3 + k] = static_cast<std::uint8_t>(disp >> (8 * k));
  }
  FileDiffOptions branches = FastOptions(), learned = FastOptions();
  branches.x86_level = 1;
  auto p1 = DiffFile(old_data, new_data, branches);
  auto p2 = DiffFile(old_data, new_data, learned);
  ASSERT_TRUE(p1.ok() && p2.ok());
  auto rebuilt = ApplyFileDeltaToMemory(old_data, *p2);
  ASSERT_TRUE(rebuilt.ok()) << rebuilt.error().ToString();
  EXPECT_TRUE(*rebuilt == new_data);
  // The operands are predicted: the patch is far smaller than with branches alone.
  EXPECT_LT(p2->size() * 2, p1->size()) << p2->size() << " vs " << p1->size();
}

TEST(X86PredictorTest, TheWalkFindsEveryInstructionWhereverItSits) {
  // Instructions of each pattern at every gap from 0 to 22 bytes of filler (NOPs, which
  // begin nothing), so that each lands at every position of the walk's 16-byte groups,
  // and a call ends on the last byte of a file whose size is not a multiple of 16.
  // The ModRM byte sits 1 to 4 bytes after the instruction's start.
  const std::vector<std::vector<std::uint8_t>> forms = {
      {0xE8},                          // call rel32
      {0x0F, 0x85},                    // jne rel32
      {0x8B, 0x05},                    // mov eax, [rip+d32]
      {0x48, 0x8D, 0x3D},              // lea rdi, [rip+d32]
      {0xF3, 0x48, 0x8B, 0x05},        // prefix, REX, opcode, ModRM
      {0x66, 0x48, 0x0F, 0x10, 0x05},  // prefix, REX, two-byte opcode, ModRM
      {0x83, 0x3D},                    // cmp dword [rip+d32], imm8 (one immediate byte)
  };
  constexpr std::size_t kCodeAt = 0x1000;
  Bytes code;
  std::size_t branches = 0, rips = 0;
  for (std::size_t k = 0; k < 23 * forms.size(); ++k) {
    code.insert(code.end(), k % 23, 0x90);
    const auto& form = forms[k % forms.size()];
    code.insert(code.end(), form.begin(), form.end());
    const std::size_t end = kCodeAt + code.size() + 4 + (form == forms.back() ? 1 : 0);
    const auto disp = static_cast<std::uint32_t>(0x200 + k - end);  // a target in the file
    for (int b = 0; b < 4; ++b) code.push_back(static_cast<std::uint8_t>(disp >> (8 * b)));
    if (form == forms.back()) code.push_back(0x01);
    (form[0] == 0xE8 || form[0] == 0x0F ? branches : rips) += 1;
  }
  // A call last (a RIP-relative operand there would end outside the segment's addresses).
  code.insert(code.end(), 16 - (kCodeAt + code.size() + 5) % 16 + 3, 0x90);
  const auto back = static_cast<std::uint32_t>(0x200 - (kCodeAt + code.size() + 5));
  code.push_back(0xE8);
  for (int b = 0; b < 4; ++b) code.push_back(static_cast<std::uint8_t>(back >> (8 * b)));
  ++branches;
  Bytes old_data(kCodeAt, 0);
  old_data.insert(old_data.end(), code.begin(), code.end());
  ASSERT_NE(old_data.size() % 16, 0u);
  WriteElfHeader(old_data, {{0, 0, old_data.size()}});
  PredictionStats stats;
  std::vector<Control> identity = {Control{old_data.size(), 0, 0}};
  PredictedDifferences(Transform::kX86Learned, old_data, old_data, identity, &stats);
  auto seen = [&](RefKind kind) {
    return stats.hit[static_cast<int>(kind)] + stats.miss[static_cast<int>(kind)];
  };
  EXPECT_EQ(seen(RefKind::kX86Branch), branches);
  EXPECT_EQ(seen(RefKind::kX86Rip), rips);
}

TEST(TargetTableTest, KeysSharingAHomeSlotAreFoundAndOthersAreNot) {
  TargetTable table(0);  // the smallest table: 4,096 slots
  std::uint32_t key = 0;
  // Enough keys that many share a home slot or run into another's probe.
  for (std::int64_t t = 0; t < 2000; ++t) {
    ASSERT_TRUE(TargetTable::Key(t * 4096, false, &key));
    table.Put(key, static_cast<std::uint32_t>(t));
  }
  for (std::int64_t t = 0; t < 2000; ++t) {
    std::uint32_t value = 0;
    ASSERT_TRUE(TargetTable::Key(t * 4096, false, &key));
    ASSERT_TRUE(table.Find(key, &value)) << t;
    EXPECT_EQ(value, static_cast<std::uint32_t>(t));
    ASSERT_TRUE(TargetTable::Key(t * 4096, true, &key));  // the other address space
    EXPECT_FALSE(table.Find(key, &value)) << t;
  }
}

TEST(FileDeltaTest, RejectsWrongSourceAndCorruptPayloads) {
  Bytes a = Random(100000, 13), b = a;
  b[500] ^= 1;
  b.insert(b.begin() + 1000, 50, 7);
  auto patch = DiffFile(a, b, FastOptions());
  ASSERT_TRUE(patch.ok());
  Bytes shorter(a.begin(), a.end() - 1);
  auto wrong = ApplyFileDeltaToMemory(shorter, *patch);
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.error().code(), ErrorCode::kVerificationFailed);
  for (std::size_t cut :
       {std::size_t{0}, std::size_t{1}, std::size_t{5}, patch->size() / 2, patch->size() - 1}) {
    auto r = ApplyFileDeltaToMemory(a, std::span(*patch).first(cut));
    EXPECT_FALSE(r.ok()) << "cut at " << cut;
  }
  Bytes bad_transform = *patch;
  bad_transform[0] = 7;
  EXPECT_EQ(ApplyFileDeltaToMemory(a, bad_transform).error().code(), ErrorCode::kUnsupported);
}

// A few hundred bytes declaring half a gigabyte of controls (the most the format allows):
// decoding fails on the missing data having allocated only what was actually decoded.
TEST(FileDeltaTest, ADeclaredLengthTheDataDoesNotBackCostsNoMemory) {
  const std::vector<std::uint8_t> old_data(100, 'a');
  const std::uint64_t controls = kMaxControls, new_size = 1000;
  CompressOptions zstd_only;
  zstd_only.try_lzma = false;
  const EncodedStream enc = CompressBest(std::vector<std::uint8_t>(4096, 0), zstd_only);
  ASSERT_EQ(enc.codec, Codec::kZstd);
  const std::vector<std::uint8_t>& tiny = enc.bytes;
  ByteWriter w;
  w.U8(kTransformNone);
  w.Varint(old_data.size());
  w.Varint(new_size);
  w.Varint(controls);
  w.U8(kLayoutDense);
  w.Varint(new_size);  // difference length: all of the new file
  const std::uint64_t raw[3] = {controls * 30, new_size, 0};
  for (std::uint64_t r : raw) {
    w.U8(static_cast<std::uint8_t>(Codec::kZstd));
    w.U8(0);
    w.Varint(r);
    w.Varint(tiny.size());
  }
  for (int i = 0; i < 3; ++i) w.Bytes(tiny);
  std::vector<std::uint8_t> patch = w.Take();
  ASSERT_LT(patch.size(), 300u);
  rusage before{};
  ::getrusage(RUSAGE_SELF, &before);
  MemoryFile old_file(old_data), patch_file(patch);
  std::vector<std::uint8_t> out;
  VectorSink sink(&out);
  auto r = ApplyFileDelta(old_file, patch_file, 0, patch.size(), sink);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kCorrupt) << r.error().ToString();
  rusage after{};
  ::getrusage(RUSAGE_SELF, &after);
  EXPECT_LT(after.ru_maxrss - before.ru_maxrss, 64 * 1024) << "KiB of peak memory grown";
}

}  // namespace
}  // namespace qp::delta
