// Group commit: callers that arrive while a batch is being written wait, and are written
// together in the next batch, by whichever of them finds the writer free. One transaction
// (one WAL flush) then serves many requests, and there is no writer thread to start or stop.
// A batch holds at most `max_batch` items, oldest first. Thread-safe.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <utility>
#include <vector>

namespace qp::server {

template <typename Item>
class GroupCommit {
 public:
  // `write` gets the batch, in arrival order, and sets each item's outcome.
  using WriteFn = std::function<void(const std::vector<Item*>&)>;

  GroupCommit(WriteFn write, std::size_t max_batch)
      : write_(std::move(write)), max_batch_(max_batch) {}

  // Returns once `item` was written (its outcome set by the write function).
  void Submit(Item* item) {
    Entry entry(item);
    std::unique_lock<std::mutex> lock(mu_);
    queue_.push_back(&entry);
    // Each caller sleeps on its own condition: a finished batch wakes its own callers and
    // the next to write, not every caller waiting (a wake-up is a context switch).
    while (!entry.written) {
      if (writing_ || queue_.front() != &entry) {
        entry.cv.wait(lock);
        continue;
      }
      writing_ = true;
      std::vector<Entry*> batch;
      std::vector<Item*> items;
      while (!queue_.empty() && batch.size() < max_batch_) {
        batch.push_back(queue_.front());
        items.push_back(queue_.front()->item);
        queue_.pop_front();
      }
      lock.unlock();
      write_(items);
      lock.lock();
      // Each entry lives on its caller's stack: touched only under the lock, and not after
      // its caller saw it written.
      for (Entry* e : batch) {
        e->written = true;
        if (e != &entry) e->cv.notify_one();
      }
      writing_ = false;
      if (!queue_.empty()) queue_.front()->cv.notify_one();  // the next batch's writer
    }
  }

 private:
  struct Entry {
    explicit Entry(Item* i) : item(i) {}
    Item* item;
    bool written = false;
    std::condition_variable cv;
  };

  WriteFn write_;
  const std::size_t max_batch_;
  std::mutex mu_;
  std::deque<Entry*> queue_;
  bool writing_ = false;
};

}  // namespace qp::server
