#include "server/server.h"

#include <unistd.h>

#include "server/report_store.h"

namespace qp::server {

Result<std::unique_ptr<Server>> Server::Open(const ServerConfig& config, Env* env, Clock* clock) {
  QP_ASSIGN_OR_RETURN(auto store, OpenReportStore(config.database));
  std::unique_ptr<Server> s(new Server());
  s->config_ = config;
  if (config.shared_repository) {
    if (config.database.rfind("postgresql:", 0) != 0 &&
        config.database.rfind("postgres:", 0) != 0) {
      return Error(ErrorCode::kInvalidArgument,
                   "shared_repository needs a postgresql:// database, which every instance shares");
    }
    std::string name = config.instance_name;
    if (name.empty()) {
      char host[256] = {};
      ::gethostname(host, sizeof(host) - 1);
      name = std::string(host) + ":" + std::to_string(::getpid());
    }
    QP_ASSIGN_OR_RETURN(s->shared_,
                        SharedRepository::Open(config.database, env, clock, config.repo_dir, name,
                                               SharedRepository::Options{}));
  }
  s->service_ = std::make_unique<FleetService>(config, std::move(store), env, clock);
  if (s->shared_) s->service_->UseRepositoryHost(s->shared_.get());
  s->files_ = std::make_unique<RepositoryFiles>(config.repo_dir);
  s->http_ = std::make_unique<HttpServer>(s->config_, s->service_.get(), s->files_.get());
  return s;
}

Status Server::Start() {
  QP_RETURN_IF_ERROR(http_->Start());
  if (shared_) {
    HttpServer* http = http_.get();
    FleetService* service = service_.get();
    shared_->Start(
        SharedRepository::Callbacks{[http](std::uint64_t) { http->NotifyPublished(); },
                                    [service](const std::string& body, const std::string& peer) {
                                      ApiResponse r = service->ApplyRollout(body, peer);
                                      return ForwardedAnswer{r.status, r.body};
                                    },
                                    [service] { service->SignerTick(); }});
  }
  return OkStatus();
}

// The shared repository's thread goes first (it calls the HTTP server and the service),
// then the HTTP server (it refers to the service, the files and the shared repository).
Server::~Server() {
  if (shared_) shared_->Stop();
  http_.reset();
}

}  // namespace qp::server
