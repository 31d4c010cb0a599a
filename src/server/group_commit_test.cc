#include "server/group_commit.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace qp::server {
namespace {

struct Item {
  int id = 0;
  int writes = 0;  // set by the write function
  int batch = 0;   // the batch it was written in
};

// Every item is written exactly once, in a batch of at most max_batch, and its caller
// returns only after that; batches never overlap.
TEST(GroupCommitTest, EveryItemIsWrittenOnceInBoundedNonOverlappingBatches) {
  constexpr int kThreads = 16, kPerThread = 200;
  std::atomic<int> writing{0}, batches{0}, overlapped{0}, too_big{0}, largest{0};
  GroupCommit<Item> group(
      [&](const std::vector<Item*>& batch) {
        if (writing++ != 0) ++overlapped;
        if (batch.size() > 8) ++too_big;
        largest = std::max(largest.load(), static_cast<int>(batch.size()));
        int n = ++batches;
        for (Item* i : batch) {
          ++i->writes;
          i->batch = n;
        }
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        --writing;
      },
      8);
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < kPerThread; ++k) {
        Item item{t * kPerThread + k};
        group.Submit(&item);
        if (item.writes != 1 || item.batch == 0) ++bad;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad, 0);
  EXPECT_EQ(overlapped, 0);
  EXPECT_EQ(too_big, 0);
  EXPECT_LE(batches, kThreads * kPerThread);
  // 16 callers and a 200 us write: batches form (printed, not asserted: timing).
  std::printf("%d items in %d batches, the largest %d\n", kThreads * kPerThread, batches.load(),
              largest.load());
}

}  // namespace
}  // namespace qp::server
