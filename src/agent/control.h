// The local control socket (/run/quietpatch/control.sock by default): one JSON request per
// connection, one JSON answer. Anyone local may read status and history; changes
// (settings, check, install, remove) are for root or members of the configured admin
// group, as the kernel reports the peer (SO_PEERCRED), never as the request claims.
//
//   request:  {"cmd": "status" | "history" | "settings" | "check" | "install" | "remove",
//              "auto_install": bool, "what": "openssl" | "openssl/3.0.17-1~deb12u2/a",
//              "component": "openssl"}
//   answer:   {"ok": true, "result": ...} or {"ok": false, "code": "permission_denied" |
//              "bad_request" | "failed", "error": "..."}
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "agent/agent.h"

namespace qp::agent {

// Connections are served concurrently (a slow client holds only its own connection), each
// within a whole-request deadline; at most kMaxConnections at once, kMaxPerUser of them
// from one user. Beyond that a connection is answered {"code": "busy"} and closed.
class ControlServer {
 public:
  static constexpr int kMaxConnections = 16;
  static constexpr int kMaxPerUser = 4;
  struct Options {
    // The whole request must arrive within this; the answer must be taken within it too.
    std::chrono::milliseconds deadline{5000};
  };

  ControlServer(Agent* agent, std::string socket_path);
  ControlServer(Agent* agent, std::string socket_path, Options options);
  ~ControlServer();

  // Binds (replacing a stale socket file), makes the socket connectable by everyone
  // (authorisation is per request) and serves on a thread.
  Status Start();
  void Stop();

 private:
  void Serve();
  void Handle(int fd, unsigned uid, unsigned gid);

  Agent* agent_;
  std::string path_;
  Options options_;
  int listen_fd_ = -1;
  int wake_fd_ = -1;  // an eventfd: Stop() writes to it
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable idle_;
  int active_ = 0;
  std::map<unsigned, int> per_user_;
};

// Sends one request to the daemon and returns its answer. kNotFound when no daemon listens
// on `socket_path`.
Result<nlohmann::json> CallControl(const std::string& socket_path, const nlohmann::json& request,
                                   int timeout_ms);

// Whether the user `uid` (primary group `gid`) may change things: root, or a member of
// `admin_group`.
bool IsAdmin(unsigned uid, unsigned gid, const std::string& admin_group);

}  // namespace qp::agent
