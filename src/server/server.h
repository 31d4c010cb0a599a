// quietpatch-server's parts assembled from one configuration: the report store it names,
// the fleet service over it, the repository files, and the HTTP(S) server in front. The
// command and the tests start servers through this one path.
#pragma once

#include <memory>

#include "core/clock.h"
#include "core/env.h"
#include "core/result.h"
#include "server/fleet_service.h"
#include "server/http_server.h"
#include "server/repository_files.h"
#include "server/server_config.h"
#include "server/shared_repository.h"

namespace qp::server {

class Server {
 public:
  // Opens the report store the configuration names; nothing listens until Start().
  static Result<std::unique_ptr<Server>> Open(const ServerConfig& config, Env* env, Clock* clock);
  ~Server();

  Status Start();
  void Stop() { http_->Stop(); }
  int port() const { return http_->port(); }

  FleetService& service() { return *service_; }
  // Set when the repository lives in the database (shared_repository).
  SharedRepository* shared() { return shared_.get(); }
  RepositoryFiles& files() { return *files_; }
  HttpServer& http() { return *http_; }

 private:
  Server() = default;
  ServerConfig config_;                       // the HTTP server keeps a reference to it
  std::unique_ptr<SharedRepository> shared_;  // outlives the service and the HTTP server
  std::unique_ptr<FleetService> service_;
  std::unique_ptr<RepositoryFiles> files_;
  std::unique_ptr<HttpServer> http_;
};

}  // namespace qp::server
