// quietpatch-server's configuration: a TOML file, every field overridable by a flag.
//
//   listen = "127.0.0.1:8080"
//   repo_dir = "/srv/quietpatch/repo"
//   keys_dir = "/etc/quietpatch-server/keys"      # online keys only: rollout, snapshot, timestamp
//   admin_token_file = "/etc/quietpatch-server/admin.token"   # 0600, refused otherwise
//   viewer_token_file = "/etc/quietpatch-server/viewer.token" # read-only fleet views (0600)
//   database = "sqlite:/var/lib/quietpatch-server/reports.db"  # or postgresql://...
//   shared_repository = false    # true: the repository lives in the (PostgreSQL) database,
//                                # repo_dir is this instance's copy (docs/server.md)
//   instance_name = ""           # names this instance in the database (default host:pid)
//   audit_log = "/var/lib/quietpatch-server/audit.log"
//   dashboard_dir = "/usr/share/quietpatch/dashboard"
//   tls_cert = ""  tls_key = ""                   # both set: HTTPS
//   threads = 2                                   # I/O threads
//   worker_threads = 16                           # handlers that wait on the database
//   report_rate_per_minute = 60                   # per install id
//   timestamp_resign_hours = 6                    # re-sign when it expires sooner
//   watch_per_address = 256                       # open anonymous watches per client address
//   watch_per_device = 2                          # open signed watches per enrolled device
//   [auto_halt]
//   min_reports = 20
//   max_failure_percent = 5
#pragma once

#include <string>

#include "core/env.h"
#include "core/result.h"

namespace qp::server {

struct ServerConfig {
  std::string listen_address = "127.0.0.1";
  int listen_port = 8080;
  std::string repo_dir;
  std::string keys_dir;
  std::string admin_token_file;
  std::string viewer_token_file;
  std::string database;
  bool shared_repository = false;
  std::string instance_name;
  std::string audit_log;
  std::string dashboard_dir;
  std::string tls_cert, tls_key;
  int threads = 2;
  // Requests that wait on the database (reports, enrollment, admin) run on these, so that
  // many of them can be in one group commit (PostgreSQL) while the I/O threads go on.
  int worker_threads = 16;
  int report_rate_per_minute = 60;
  int timestamp_resign_hours = 6;
  int request_timeout_seconds = 10;  // to send a whole request (slow clients are cut)
  int watch_per_address = 256;       // open anonymous watches one client address may hold
  int watch_per_device = 2;          // open signed watches one enrolled device may hold
  int auto_halt_min_reports = 20;
  double auto_halt_max_failure_percent = 5;
};

// Reads the file (an empty path: defaults only).
Result<ServerConfig> LoadServerConfig(Env* env, const std::string& path);
// "host:port" -> fields.
Status ParseListen(const std::string& listen, ServerConfig* config);

}  // namespace qp::server
