// quietpatchd: the agent daemon on each device.
//
//   quietpatchd [--config-dir /etc/quietpatch] [--state-dir /var/lib/quietpatch]
//               [--socket PATH] [--log-level info] [--once | --identity | --write-paths]
//
// --identity makes this device's key if there is none yet and prints its install id (for
// an operator who registers devices ahead, or a provisioning script), then exits.
// --write-paths prints the directories installs write, from the component configuration;
// the systemd generator (packaging/quietpatch-generator) makes them the unit's only
// writable paths besides its state.
//
// Under systemd (Type=notify) it says READY=1 once started; SIGTERM stops it between
// steps; SIGHUP reloads the configuration. Logs go to stderr (the journal under systemd).
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cstring>
#include <iostream>
#include <thread>

#include "agent/agent.h"
#include "agent/control.h"
#include "agent/device_identity.h"
#include "agent/http_transport.h"
#include "apps/main_guard.h"
#include "core/clock.h"
#include "core/durable_file.h"
#include "core/log.h"
#include "store/component_config.h"
#include "store/package_component.h"

namespace {

// sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET.
void Notify(const char* state) {
  const char* path = std::getenv("NOTIFY_SOCKET");
  if (path == nullptr || path[0] == '\0') return;
  int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::size_t len = std::strlen(path);
  if (len >= sizeof(addr.sun_path)) {
    ::close(fd);
    return;
  }
  std::memcpy(addr.sun_path, path, len);
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
  ::sendto(fd, state, std::strlen(state), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr),
           static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len));
  ::close(fd);
}

int Run(int argc, char** argv) {
  CLI::App app{"quietpatchd: installs security improvements in the background"};
  std::string config_dir = "/etc/quietpatch";
  std::string state_dir = "/var/lib/quietpatch";
  std::string socket;
  std::string log_level = "info";
  bool once = false;
  app.add_option("--config-dir", config_dir, "configuration directory");
  app.add_option("--state-dir", state_dir, "state directory");
  app.add_option("--socket", socket, "control socket (overrides agent.toml)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error");
  app.add_flag("--once", once, "check once, deliver reports, and exit");
  bool identity = false;
  app.add_flag("--identity", identity, "make the device key if needed, print the install id, exit");
  bool write_paths = false;
  app.add_flag("--write-paths", write_paths,
               "print the paths installs write (one a line; for the unit's ReadWritePaths=), exit");
  CLI11_PARSE(app, argc, argv);
  if (auto s = qp::InitLogging(log_level); !s.ok()) {
    std::cerr << s.error().ToString() << "\n";
    return 2;
  }
  // Signals are taken by one thread with sigwait; every other thread blocks them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  qp::Env* env = qp::Env::Default();
  if (identity) {
    if (auto s = qp::MakeDirs(env, state_dir, 0755); !s.ok()) {
      spdlog::error("{}", s.error().ToString());
      return 1;
    }
    auto id = qp::agent::LoadOrCreateIdentity(env, state_dir);
    if (!id.ok()) {
      spdlog::error("{}", id.error().ToString());
      return 1;
    }
    std::cout << id->install_id << "\n";
    return 0;
  }
  auto config = qp::agent::LoadAgentConfig(env, config_dir, state_dir);
  if (!config.ok()) {
    spdlog::error("{}", config.error().ToString());
    return 1;
  }
  if (write_paths) {
    auto components = qp::store::LoadComponentConfigs(env, config->components_dir);
    if (!components.ok()) {
      spdlog::error("{}", components.error().ToString());
      return 1;
    }
    auto set =
        qp::store::ResolvePackageComponents(env, config->dpkg_admin_dir, std::move(*components));
    for (const auto& path : qp::store::WritablePaths(set.active)) std::cout << path << "\n";
    return 0;
  }
  if (!socket.empty()) config->control_socket = socket;
  qp::agent::HttpTransport http(config->ca_file,
                                std::string("quietpatchd/") + qp::agent::kAgentVersion);
  qp::agent::Agent agent(*config, env, qp::Clock::Real(), http.transport());
  if (auto s = agent.Start(); !s.ok()) {
    spdlog::error("start: {}", s.error().ToString());
    return 1;
  }
  if (once) {
    auto s = agent.Check();
    if (!s.ok()) spdlog::error("check: {}", s.error().ToString());
    long retry = 0;
    auto r = agent.FlushReports(&retry);
    if (!r.ok()) spdlog::warn("reports: {}", r.error().ToString());
    return s.ok() ? 0 : 1;
  }
  qp::agent::ControlServer control(&agent, config->control_socket);
  if (auto s = control.Start(); !s.ok()) {
    spdlog::error("control socket: {}", s.error().ToString());
    return 1;
  }
  std::atomic<bool> stop{false};
  std::thread signal_thread([&] {
    while (!stop) {
      int sig = 0;
      if (sigwait(&signals, &sig) != 0) continue;
      if (sig == SIGHUP) {
        spdlog::info("SIGHUP: reloading configuration");
        if (auto s = agent.Reload(); !s.ok()) spdlog::error("reload: {}", s.error().ToString());
        agent.RequestCheck();
        continue;
      }
      spdlog::info("signal {}: stopping after the current step", sig);
      stop = true;
      agent.RequestCheck();  // wakes the loop (and cancels a watch)
    }
  });
  Notify("READY=1");
  agent.Run(stop);
  Notify("STOPPING=1");
  control.Stop();
  // The signal thread waits in sigwait: wake it.
  stop = true;
  ::kill(::getpid(), SIGTERM);
  signal_thread.join();
  spdlog::info("stopped");
  return 0;
}

}  // namespace

int main(int argc, char** argv) { return qp::apps::GuardedMain("quietpatchd", Run, argc, argv); }
