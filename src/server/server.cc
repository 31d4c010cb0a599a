#include "server/server.h"

#include "server/report_store.h"

namespace qp::server {

Result<std::unique_ptr<Server>> Server::Open(const ServerConfig& config, Env* env, Clock* clock) {
  QP_ASSIGN_OR_RETURN(auto store, OpenReportStore(config.database));
  std::unique_ptr<Server> s(new Server());
  s->service_ = std::make_unique<FleetService>(config, std::move(store), env, clock);
  s->files_ = std::make_unique<RepositoryFiles>(config.repo_dir);
  s->http_ = std::make_unique<HttpServer>(config, s->service_.get(), s->files_.get());
  return s;
}

// The HTTP server goes first: it refers to the service and the files.
Server::~Server() { http_.reset(); }

}  // namespace qp::server
