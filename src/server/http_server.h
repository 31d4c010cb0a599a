// quietpatch-server's HTTP/1.1 front: Boost.Beast on an io_context run by a few threads.
// Routes:
//   GET|HEAD /repo/metadata/..., /repo/targets/...   repository files (repository_files.h)
//   GET  /v1/watch?timestamp=N&timeout=S             200 {"timestamp": M} once M > N, 204 at S
//   POST /v1/reports                                 200 {"stored": K} once stored
//   POST /v1/admin/rollout, GET /v1/admin/audit      bearer token
//   GET  /v1/fleet/improvements                      the dashboard's data
//   GET  /metrics                                    Prometheus text
//   GET  /, /app.js, /assets/chart.umd.js            the dashboard
// Limits: 8 KiB of headers, 256 KiB bodies, 10 s to send a request (slow clients are cut),
// 20,000 connections. Idle watchers cost one socket and a timer each.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/result.h"
#include "server/fleet_service.h"
#include "server/repository_files.h"
#include "server/server_config.h"

namespace qp::server {

class HttpServer {
 public:
  HttpServer(const ServerConfig& config, FleetService* service, RepositoryFiles* files);
  ~HttpServer();

  // Binds and starts serving on `threads` threads. kIo when the address is taken.
  Status Start();
  // Stops accepting, answers open watches with 204, lets requests in flight finish (up to
  // a few seconds), then returns.
  void Stop();
  int port() const;
  std::size_t watchers() const;
  // New metadata was published: answer the watchers whose version is older.
  void NotifyPublished();
  // True when every event loop ran a posted no-op within `within`: the systemd watchdog's
  // proof of life (a loop stuck in a handler, or deadlocked, keeps it false).
  bool Responsive(std::chrono::milliseconds within);

  struct Impl;  // public for the session class in http_server.cc

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace qp::server
