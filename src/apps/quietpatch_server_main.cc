// quietpatch-server: the fleet service (repository files, online signing, watch, reports,
// auto-halt, dashboard, metrics).
//
//   quietpatch-server [--config server.toml] [--listen 127.0.0.1:8080] [--repo DIR]
//                     [--keys DIR] [--database sqlite:FILE|postgresql://...]
//                     [--admin-token-file FILE] [--audit-log FILE] [--dashboard-dir DIR]
//
// Prints "listening on HOST:PORT" once ready. SIGTERM stops it gracefully. Under systemd
// (Type=notify) it says READY=1 once listening and STOPPING=1 on the way out, and with
// WatchdogSec= pings WATCHDOG=1 at half the interval while every event loop answers.
#include <signal.h>
#include <systemd/sd-daemon.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>

#include "core/log.h"
#include "server/server.h"

namespace {

// Waits for SIGTERM or SIGINT. With the watchdog on, wakes at half its interval and pings
// it only while the server's event loops run posted work: a hung server gets restarted.
int WaitForSignal(const sigset_t* signals, qp::server::Server* server) {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) {
    int sig = 0;
    sigwait(signals, &sig);
    return sig;
  }
  const std::uint64_t half = usec / 2;
  const timespec wait{static_cast<time_t>(half / 1000000),
                      static_cast<long>(half % 1000000) * 1000};
  const auto within = std::chrono::milliseconds(std::max<std::uint64_t>(1, half / 4000));
  for (;;) {
    int sig = sigtimedwait(signals, nullptr, &wait);
    if (sig > 0) return sig;
    if (server->http().Responsive(within)) {
      sd_notify(0, "WATCHDOG=1");
    } else {
      spdlog::error("an event loop did not answer within {} ms: no watchdog ping", within.count());
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    CLI::App app{"quietpatch-server: the fleet service"};
    std::string config_file, listen, repo, keys, database, token, viewer, audit, dashboard,
        log_level = "info";
    int threads = 0;
    bool shared = false;
    std::string instance;
    app.add_option("--config", config_file, "TOML configuration");
    app.add_option("--listen", listen, "host:port (port 0: any free port)");
    app.add_option("--repo", repo, "repository directory");
    app.add_option("--keys", keys, "online keys (rollout, snapshot, timestamp)");
    app.add_option("--database", database, "sqlite:FILE or postgresql://...");
    app.add_option("--admin-token-file", token, "bearer token for /v1/admin (0600)");
    app.add_option("--viewer-token-file", viewer, "bearer token for the fleet views (0600)");
    app.add_option("--audit-log", audit, "audit log of admin actions");
    app.add_option("--dashboard-dir", dashboard, "dashboard files");
    app.add_option("--threads", threads, "I/O threads");
    app.add_flag("--shared-repository", shared,
                 "the repository lives in the PostgreSQL database; --repo is this instance's copy");
    app.add_option("--instance-name", instance, "this instance's name in the database");
    app.add_option("--log-level", log_level);
    CLI11_PARSE(app, argc, argv);
    if (auto s = qp::InitLogging(log_level); !s.ok()) {
      std::cerr << s.error().ToString() << "\n";
      return 2;
    }
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);
    ::signal(SIGPIPE, SIG_IGN);

    qp::Env* env = qp::Env::Default();
    auto config = qp::server::LoadServerConfig(env, config_file);
    if (!config.ok()) {
      spdlog::error("{}", config.error().ToString());
      return 1;
    }
    if (!listen.empty()) {
      if (auto s = qp::server::ParseListen(listen, &*config); !s.ok()) {
        spdlog::error("{}", s.error().ToString());
        return 2;
      }
    }
    if (!repo.empty()) config->repo_dir = repo;
    if (!keys.empty()) config->keys_dir = keys;
    if (!database.empty()) config->database = database;
    if (!token.empty()) config->admin_token_file = token;
    if (!viewer.empty()) config->viewer_token_file = viewer;
    if (!audit.empty()) config->audit_log = audit;
    if (!dashboard.empty()) config->dashboard_dir = dashboard;
    if (threads > 0) config->threads = threads;
    if (shared) config->shared_repository = true;
    if (!instance.empty()) config->instance_name = instance;
    if (config->repo_dir.empty() || config->database.empty()) {
      spdlog::error("--repo and --database are required (or in --config)");
      return 2;
    }
    auto server = qp::server::Server::Open(*config, env, qp::Clock::Real());
    if (!server.ok()) {
      spdlog::error("{}", server.error().ToString());
      return 1;
    }
    if (auto s = (*server)->Start(); !s.ok()) {
      spdlog::error("{}", s.error().ToString());
      return 1;
    }
    std::cout << "listening on " << config->listen_address << ":" << (*server)->port() << std::endl;
    sd_notifyf(0, "READY=1\nSTATUS=listening on %s:%d", config->listen_address.c_str(),
               (*server)->port());
    int sig = WaitForSignal(&signals, server->get());
    spdlog::info("signal {}: stopping", sig);
    sd_notify(0, "STOPPING=1");
    (*server)->Stop();
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "quietpatch-server: " << e.what() << "\n";
    return 1;
  }
}
