// Group commit: items submitted while a batch is being written wait, and are written
// together in the next batch, by one writer thread. One transaction (one WAL flush) then
// serves many requests. A caller may wait for its item (Submit) or leave a function to be
// called once it is written (SubmitAsync): then no thread waits, and a batch is not capped
// by how many threads there are to wait. A batch holds at most `max_batch` items, oldest
// first. Thread-safe. The destructor writes what is queued, then stops the writer.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace qp::server {

template <typename Item>
class GroupCommit {
 public:
  // `write` gets the batch, in arrival order, and sets each item's outcome.
  using WriteFn = std::function<void(const std::vector<Item*>&)>;

  GroupCommit(WriteFn write, std::size_t max_batch)
      : write_(std::move(write)), max_batch_(max_batch), writer_([this] { Run(); }) {}

  ~GroupCommit() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    wake_.notify_one();
    writer_.join();
  }

  GroupCommit(const GroupCommit&) = delete;
  GroupCommit& operator=(const GroupCommit&) = delete;

  // Returns once `item` was written (its outcome set by the write function).
  void Submit(Item* item) {
    Entry entry(item);
    std::unique_lock<std::mutex> lock(mu_);
    Queue(&entry);
    entry.cv.wait(lock, [&] { return entry.written; });
  }

  // Returns once everything submitted before was written and its `done` called.
  void Flush() {
    std::unique_lock<std::mutex> lock(mu_);
    flushed_.wait(lock, [&] { return queue_.empty() && idle_; });
  }

  // Returns at once; `done` is called on the writer thread once `item` was written. `item`
  // must live until then. `done` must not wait for this GroupCommit (it would wait for
  // itself); it should be short, since the next batch waits for it.
  void SubmitAsync(Item* item, std::function<void()> done) {
    auto entry = std::make_unique<Entry>(item);
    entry->done = std::move(done);
    std::lock_guard<std::mutex> lock(mu_);
    Queue(entry.release());
  }

 private:
  struct Entry {
    explicit Entry(Item* i) : item(i) {}
    Item* item;
    bool written = false;        // a waiting caller's: set under the lock
    std::condition_variable cv;  // a waiting caller's
    std::function<void()> done;  // an asynchronous caller's (the entry is then owned here)
  };

  // With the lock held.
  void Queue(Entry* entry) {
    queue_.push_back(entry);
    if (idle_) wake_.notify_one();
  }

  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      idle_ = true;
      if (queue_.empty()) flushed_.notify_all();
      wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      idle_ = false;
      if (queue_.empty()) return;  // stopping, and everything is written
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
      // A waiting caller's entry lives on its stack: touched only under the lock, and not
      // after its caller saw it written. Each caller sleeps on its own condition: a finished
      // batch wakes its own callers, not every caller waiting (a wake-up is a context switch).
      std::vector<std::unique_ptr<Entry>> finished;
      for (Entry* e : batch) {
        if (e->done) {
          finished.emplace_back(e);
        } else {
          e->written = true;
          e->cv.notify_one();
        }
      }
      lock.unlock();
      for (auto& e : finished) e->done();
      finished.clear();
      lock.lock();
    }
  }

  WriteFn write_;
  const std::size_t max_batch_;
  std::mutex mu_;
  std::condition_variable wake_;     // the writer's
  std::condition_variable flushed_;  // Flush()'s
  std::deque<Entry*> queue_;
  bool idle_ = false;
  bool stopping_ = false;
  std::thread writer_;  // last: started once the rest is made
};

}  // namespace qp::server
