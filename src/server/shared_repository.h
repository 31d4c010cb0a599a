// An instance's part in a fleet service of several, when the repository lives in
// PostgreSQL (online/repo_db.h; docs/server.md, "Several instances"). A thread of its own,
// on a connection of its own:
//  - keeps the local repository directory pulled from the database: at start, on each
//    NOTIFY quietpatch_repo, and every `resync` in case a notification was lost with a
//    connection; it tells the HTTP layer when the timestamp changed (its watchers);
//  - holds, or keeps trying for, the signer's role: a session advisory lock. The holder is
//    the only instance that changes the repository (a pull, the change, a fenced push).
//    When its process or connection dies the lock goes with the session, and another
//    instance takes it at its next try (`lease_retry`);
//  - as the signer, answers the rollout requests other instances hand over through the
//    `signer_requests` table (NOTIFY quietpatch_signer), and runs `on_signer_tick` every
//    second (the auto-halt sweep, the timestamp's re-signing).
// Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "core/clock.h"
#include "core/env.h"
#include "online/repo_db.h"
#include "server/repository_host.h"

namespace qp::server {

class SharedRepository final : public RepositoryHost {
 public:
  struct Options {
    std::chrono::milliseconds resync{5000};
    std::chrono::milliseconds lease_retry{1000};
    std::chrono::milliseconds forward_timeout{10000};
  };
  struct Callbacks {
    std::function<void(std::uint64_t timestamp_version)> on_published;
    std::function<ForwardedAnswer(const std::string& body, const std::string& peer)> on_forwarded;
    std::function<void()> on_signer_tick;
  };

  // Connects (twice: changes and pulls; the session that listens and holds the lease) and
  // pulls the whole repository into `repo_dir` before it returns.
  // Its waits and timeouts are measured on `clock`.
  static Result<std::unique_ptr<SharedRepository>> Open(const std::string& conninfo, Env* env,
                                                        Clock* clock, std::string repo_dir,
                                                        std::string instance, Options options);
  ~SharedRepository() override;

  // Starts the thread (once the callbacks' targets exist); Stop() joins it (and gives the
  // signer's role up at once). The destructor stops it too.
  void Start(Callbacks callbacks);
  void Stop();

  bool MaySign() const override { return signer_; }
  Status Change(const std::function<Status()>& change) override;
  std::optional<ForwardedAnswer> Forward(const std::string& body, const std::string& peer) override;

  // The generation the directory holds.
  std::int64_t generation() const { return have_; }

 private:
  SharedRepository(std::unique_ptr<online::RepoDb> db, Env* env, Clock* clock, std::string repo_dir,
                   std::string instance, std::string conninfo, Options options);
  void Run();
  bool Connect();       // the session: LISTEN, and the lease to try for
  void Sync(bool all);  // pulls; tells the HTTP layer of a new timestamp
  void AnswerRequests();

  std::unique_ptr<online::RepoDb> db_;  // under mu_
  Env* env_;
  Clock* clock_;
  const std::string dir_, instance_, conninfo_;
  const Options options_;
  Callbacks callbacks_;
  std::mutex mu_;
  std::atomic<std::int64_t> have_{0};
  std::atomic<std::uint64_t> timestamp_version_{0};
  std::atomic<bool> signer_{false};
  std::atomic<bool> stop_{false};
  std::unique_ptr<online::PgConnection> session_;  // the thread's
  std::thread thread_;
};

}  // namespace qp::server
