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
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "agent/agent.h"

namespace qp::agent {

class ControlServer {
 public:
  ControlServer(Agent* agent, std::string socket_path);
  ~ControlServer();

  // Binds (replacing a stale socket file), makes the socket connectable by everyone
  // (authorisation is per request) and serves on a thread.
  Status Start();
  void Stop();

 private:
  void Serve();
  void Handle(int fd);

  Agent* agent_;
  std::string path_;
  int listen_fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// Sends one request to the daemon and returns its answer. kNotFound when no daemon listens
// on `socket_path`.
Result<nlohmann::json> CallControl(const std::string& socket_path, const nlohmann::json& request,
                                   int timeout_ms);

// Whether the user `uid` (primary group `gid`) may change things: root, or a member of
// `admin_group`.
bool IsAdmin(unsigned uid, unsigned gid, const std::string& admin_group);

}  // namespace qp::agent
