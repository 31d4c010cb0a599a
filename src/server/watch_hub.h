// The server's watchers: who waits for a timestamp newer than the one it knows, and how
// many watch slots each client holds. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace qp::server {

// Watchers waiting for a newer timestamp.
class WatchHub {
 public:
  struct Waiter {
    std::uint64_t known = 0;
    std::function<void(std::uint64_t)> fire;  // called at most once, from any thread
    std::atomic<bool> done{false};
  };
  std::shared_ptr<Waiter> Add(std::uint64_t known, std::function<void(std::uint64_t)> fire) {
    auto w = std::make_shared<Waiter>();
    w->known = known;
    w->fire = std::move(fire);
    std::lock_guard<std::mutex> lock(mu_);
    waiters_.push_back(w);
    return w;
  }
  void Notify(std::uint64_t version) {
    std::list<std::shared_ptr<Waiter>> ready;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto it = waiters_.begin(); it != waiters_.end();) {
        if ((*it)->done || (*it)->known < version) {
          if (!(*it)->done) ready.push_back(*it);
          it = waiters_.erase(it);
        } else {
          ++it;
        }
      }
    }
    for (auto& w : ready) {
      if (!w->done.exchange(true)) w->fire(version);
    }
  }
  // Answers every watcher with "nothing new" (fire(0)).
  void CloseAll() {
    std::list<std::shared_ptr<Waiter>> all;
    {
      std::lock_guard<std::mutex> lock(mu_);
      all.swap(waiters_);
    }
    for (auto& w : all) {
      if (!w->done.exchange(true)) w->fire(0);
    }
  }
  void Remove(const std::shared_ptr<Waiter>& w) {
    std::lock_guard<std::mutex> lock(mu_);
    waiters_.remove(w);
  }
  std::size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    return waiters_.size();
  }

 private:
  std::mutex mu_;
  std::list<std::shared_ptr<Waiter>> waiters_;
};

// Watch slots per client address: a client holding its share gets 429, the others are
// still served. A slot is released when its handle is destroyed.
class PeerSlots {
 public:
  // Null when `peer` already holds `per_peer` slots.
  std::shared_ptr<void> Take(const std::string& peer, int per_peer) {
    std::lock_guard<std::mutex> lock(mu_);
    int& n = held_[peer];
    if (n >= per_peer) return nullptr;
    ++n;
    return std::make_shared<Slot>(this, peer);
  }

 private:
  struct Slot {
    Slot(PeerSlots* o, std::string p) : owner(o), peer(std::move(p)) {}
    ~Slot() {
      std::lock_guard<std::mutex> lock(owner->mu_);
      if (--owner->held_[peer] <= 0) owner->held_.erase(peer);
    }
    PeerSlots* owner;
    std::string peer;
  };
  std::mutex mu_;
  std::map<std::string, int> held_;
};

}  // namespace qp::server
