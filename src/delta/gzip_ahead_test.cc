#include "delta/gzip_ahead.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/memory_file.h"
#include "delta/gzip_member.h"

namespace qp::delta {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes Text(int entries, int release) {
  std::string s;
  for (int e = entries; e > 0; --e) {
    s += "package (" + std::to_string(release) + "." + std::to_string(e) + ") stable\n";
    s += "  * fix " + std::to_string(e * 7919 % 1000) + " in the parser\n\n";
  }
  return Bytes(s.begin(), s.end());
}

// Four gzip files, each with a delta to its next release, all payloads in one "patch".
struct Deltas {
  std::vector<Bytes> old_gz, new_gz;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> at;  // offset, length
  Bytes patch;

  Deltas() {
    FileDiffOptions options;
    options.compress.zstd_level = 3;
    options.compress.lzma_extreme = false;
    for (int i = 0; i < 4; ++i) {
      old_gz.push_back(*GzipBest(Text(200 + i, 1)));
      new_gz.push_back(*GzipBest(Text(201 + i, 2)));
      auto payload = DiffGzipped(old_gz.back(), new_gz.back(), options);
      EXPECT_TRUE(payload.ok()) << payload.error().ToString();
      at.emplace_back(patch.size(), payload->size());
      patch.insert(patch.end(), payload->begin(), payload->end());
    }
  }
  void AddAll(GzipAhead& lane) {
    for (int i = 0; i < 4; ++i)
      lane.Add("f" + std::to_string(i), old_gz[i], at[i].first, at[i].second);
  }
};

TEST(GzipAheadTest, MakesEveryFileAndHandsThemOverInOrder) {
  Deltas d;
  MemoryFile patch(d.patch);
  GzipAhead lane(&patch);
  d.AddAll(lane);
  EXPECT_TRUE(lane.Has("f3"));
  EXPECT_FALSE(lane.Has("other"));
  lane.Start();
  for (int i = 0; i < 4; ++i) {
    auto made = lane.Take("f" + std::to_string(i));
    ASSERT_TRUE(made.ok()) << made.error().ToString();
    EXPECT_EQ(*made, d.new_gz[i]) << i;
  }
}

TEST(GzipAheadTest, SkippedJobsAreDroppedAndNothingIsTakenTwice) {
  Deltas d;
  MemoryFile patch(d.patch);
  GzipAhead lane(&patch);
  d.AddAll(lane);
  lane.Start();
  auto third = lane.Take("f2");  // f0 and f1 dropped (the applier stopped needing them)
  ASSERT_TRUE(third.ok()) << third.error().ToString();
  EXPECT_EQ(*third, d.new_gz[2]);
  EXPECT_EQ(lane.Take("f1").error().code(), ErrorCode::kInternal);
  EXPECT_EQ(lane.Take("f2").error().code(), ErrorCode::kInternal);
  EXPECT_EQ(lane.Take("nowhere").error().code(), ErrorCode::kInternal);
  auto last = lane.Take("f3");
  ASSERT_TRUE(last.ok());
  EXPECT_EQ(*last, d.new_gz[3]);
}

TEST(GzipAheadTest, ADamagedPayloadIsAnErrorOfItsOwnFile) {
  Deltas d;
  Bytes damaged = d.patch;
  for (std::uint64_t k = 0; k < d.at[1].second; ++k) damaged[d.at[1].first + k] ^= 0x5a;
  MemoryFile patch(damaged);
  GzipAhead lane(&patch);
  d.AddAll(lane);
  lane.Start();
  EXPECT_TRUE(lane.Take("f0").ok());
  EXPECT_FALSE(lane.Take("f1").ok());
  auto next = lane.Take("f2");
  ASSERT_TRUE(next.ok()) << next.error().ToString();
  EXPECT_EQ(*next, d.new_gz[2]);
}

TEST(GzipAheadTest, StopsWithJobsNotTaken) {
  Deltas d;
  MemoryFile patch(d.patch);
  {
    GzipAhead lane(&patch);
    d.AddAll(lane);
    lane.Start();
  }  // an applier that failed early: the lane stops, waiting only for its running job
  GzipAhead never_started(&patch);
  d.AddAll(never_started);
}

}  // namespace
}  // namespace qp::delta
