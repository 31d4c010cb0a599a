#include "server/group_commit.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

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

// Asynchronous items: each `done` is called once, after its item was written, on the
// writer; no caller waits, so two submitting threads fill batches far larger than two.
// Flush() returns only once every `done` ran; a `done` may submit again (it only queues).
TEST(GroupCommitTest, AsynchronousItemsAreWrittenOnceAndFlushWaitsForEveryDone) {
  constexpr int kThreads = 2, kPerThread = 2000;
  std::atomic<int> largest{0}, writing{0}, overlapped{0};
  GroupCommit<Item> group(
      [&](const std::vector<Item*>& batch) {
        if (writing++ != 0) ++overlapped;
        largest = std::max(largest.load(), static_cast<int>(batch.size()));
        for (Item* i : batch) ++i->writes;
        std::this_thread::sleep_for(std::chrono::microseconds(500));
        --writing;
      },
      64);
  std::vector<Item> items(kThreads * kPerThread + 1);
  std::atomic<int> done{0}, early{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int k = 0; k < kPerThread; ++k) {
        Item* item = &items[static_cast<std::size_t>(t * kPerThread + k)];
        group.SubmitAsync(item, [&, item] {
          if (item->writes != 1) ++early;
          ++done;
        });
      }
    });
  }
  for (auto& th : threads) th.join();
  // A done that submits again, synchronously from the writer would deadlock; it queues.
  Item& last = items.back();
  group.SubmitAsync(&items[0], [&] { group.SubmitAsync(&last, [&] { ++done; }); });
  group.Flush();
  group.Flush();  // the resubmitted item was queued before the first Flush returned
  EXPECT_EQ(done, kThreads * kPerThread + 1);
  EXPECT_EQ(early, 0);
  EXPECT_EQ(overlapped, 0);
  EXPECT_EQ(last.writes, 1);
  EXPECT_EQ(items[0].writes, 2);  // submitted twice, written twice
  EXPECT_GT(largest, kThreads);
  EXPECT_LE(largest, 64);
}

}  // namespace
}  // namespace qp::server
