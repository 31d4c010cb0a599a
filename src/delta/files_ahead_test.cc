#include "delta/files_ahead.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace qp::delta {
namespace {

constexpr std::uint64_t kBudget = 32u << 20;

// Jobs that make "<path>" as their bytes and record the order the lane ran them in.
struct Recorder {
  std::mutex mu;
  std::vector<std::string> ran;
  FilesAhead::Make MakeOf(const std::string& path) {
    return [this, path]() -> Result<MadeFile> {
      {
        std::lock_guard<std::mutex> lock(mu);
        ran.push_back(path);
      }
      return MadeFile{std::vector<std::uint8_t>(path.begin(), path.end()), std::nullopt};
    };
  }
  std::vector<std::string> Ran() {
    std::lock_guard<std::mutex> lock(mu);
    return ran;
  }
};

std::string Text(const MadeFile& m) { return std::string(m.bytes.begin(), m.bytes.end()); }

TEST(FilesAheadTest, TheLaneTakesFirstJobsThenWorksFromTheBack) {
  Recorder rec;
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  FilesAhead ahead(kBudget);
  ahead.Add("a", 10, false, rec.MakeOf("a"));
  ahead.Add("b", 10, false, rec.MakeOf("b"));
  ahead.Add("c.gz", 10, true, [&]() -> Result<MadeFile> {
    released.wait();  // held until the applier has claimed "a"
    return rec.MakeOf("c.gz")();
  });
  ahead.Add("d", 10, false, rec.MakeOf("d"));
  ahead.Start();
  ahead.Seal();
  EXPECT_FALSE(ahead.Claim("a").has_value()) << "not begun by the lane: the applier's";
  release.set_value();
  while (rec.Ran().size() < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  for (const char* path : {"b", "c.gz", "d"}) {
    auto made = ahead.Claim(path);
    ASSERT_TRUE(made.has_value()) << path;
    ASSERT_TRUE(made->ok()) << made->error().ToString();
    EXPECT_EQ(Text(**made), path);
  }
  EXPECT_EQ(rec.Ran(), (std::vector<std::string>{"c.gz", "d", "b"}));
  EXPECT_FALSE(ahead.Claim("not a job").has_value());
  auto again = ahead.Claim("b");
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->error().code(), ErrorCode::kInternal) << "taken twice";
  again = ahead.Claim("a");
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->error().code(), ErrorCode::kInternal) << "claimed twice";
}

TEST(FilesAheadTest, TheLargestFirstJobIsBegunFirst) {
  Recorder rec;
  FilesAhead ahead(kBudget);
  ahead.Add("small.gz", 10, true, rec.MakeOf("small.gz"));
  ahead.Add("large.gz", 30, true, rec.MakeOf("large.gz"));
  ahead.Add("middle.gz", 20, true, rec.MakeOf("middle.gz"));
  ahead.Add("plain", 40, false, rec.MakeOf("plain"));
  ahead.Start();
  ahead.Seal();
  while (rec.Ran().size() < 4) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(rec.Ran(), (std::vector<std::string>{"large.gz", "middle.gz", "small.gz", "plain"}));
}

TEST(FilesAheadTest, BeforeItIsSealedTheLaneTakesOnlyFirstFiles) {
  Recorder rec;
  FilesAhead ahead(kBudget);
  ahead.Start();  // begun before the scan, with the gzip deltas
  std::promise<void> gz_made;
  ahead.Add("z.gz", 10, true, [&]() -> Result<MadeFile> {
    auto made = rec.MakeOf("z.gz")();
    gz_made.set_value();
    return made;
  });
  gz_made.get_future().wait();
  ahead.Add("a", 10, false, rec.MakeOf("a"));  // the rest, after the scan
  EXPECT_FALSE(ahead.Add("z.gz", 10, true, rec.MakeOf("again"))) << "added once";
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(rec.Ran(), (std::vector<std::string>{"z.gz"})) << "the back is not known yet";
  ahead.Seal();
  while (rec.Ran().size() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto a = ahead.Claim("a");
  ASSERT_TRUE(a.has_value() && a->ok());
  EXPECT_EQ(Text(**a), "a");
  auto z = ahead.Claim("z.gz");
  ASSERT_TRUE(z.has_value() && z->ok());
  EXPECT_EQ(Text(**z), "z.gz");
}

TEST(FilesAheadTest, TheLaneBeginsNoFilePastItsBudget) {
  Recorder rec;
  const std::uint64_t big = kBudget / 2 + 1;  // two do not fit at once
  std::promise<void> second_made;
  std::atomic<bool> first_began{false};
  FilesAhead ahead(kBudget);
  ahead.Add("x", big, false, [&]() -> Result<MadeFile> {
    first_began = true;
    return rec.MakeOf("x")();
  });
  ahead.Add("y", big, false, [&]() -> Result<MadeFile> {
    auto made = rec.MakeOf("y")();
    second_made.set_value();
    return made;
  });
  ahead.Start();
  ahead.Seal();
  second_made.get_future().wait();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(first_began) << "began while \"y\" was held";
  // The applier's turn comes for "x" first: not begun, so it is the applier's.
  EXPECT_FALSE(ahead.Claim("x").has_value());
  auto y = ahead.Claim("y");
  ASSERT_TRUE(y.has_value() && y->ok());
  EXPECT_EQ(Text(**y), "y");
  EXPECT_EQ(rec.Ran(), (std::vector<std::string>{"y"}));
}

TEST(FilesAheadTest, AFailedJobIsTheErrorOfItsOwnFile) {
  FilesAhead ahead(kBudget);
  Recorder rec;
  ahead.Add("ok", 10, false, rec.MakeOf("ok"));
  std::promise<void> began;
  ahead.Add("bad", 10, true, [&]() -> Result<MadeFile> {
    began.set_value();
    return Error(ErrorCode::kCorrupt, "damaged payload");
  });
  ahead.Start();
  ahead.Seal();
  began.get_future().wait();
  auto bad = ahead.Claim("bad");
  ASSERT_TRUE(bad.has_value()) << "begun by the lane";
  EXPECT_EQ(bad->error().code(), ErrorCode::kCorrupt);
  auto ok = ahead.Claim("ok");
  if (ok.has_value()) {
    ASSERT_TRUE(ok->ok());
    EXPECT_EQ(Text(**ok), "ok");
  }
}

TEST(FilesAheadTest, StopsWithFilesNotTaken) {
  Recorder rec;
  {
    FilesAhead ahead(kBudget);
    for (int i = 0; i < 20; ++i) ahead.Add(std::to_string(i), 10, false, rec.MakeOf("f"));
    ahead.Start();
    ahead.Seal();
  }  // an applier that failed early: the lane stops, waiting only for the file it makes
  FilesAhead never_started(kBudget);
  never_started.Add("a", 10, false, rec.MakeOf("a"));
  EXPECT_LE(rec.Ran().size(), 20u);
}

}  // namespace
}  // namespace qp::delta
