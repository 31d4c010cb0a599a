// The agent on each device: checks the repository (TUF), decides what applies to each
// configured component, downloads patches (resumable, verified), installs them through
// the store, runs restart hooks, reports every state change, and answers the person's
// commands. Methods are thread-safe (one lock; a check holds it while it runs); Watch()
// runs without the lock so that the control socket stays responsive.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "agent/agent_config.h"
#include "agent/improvements.h"
#include "agent/report_queue.h"
#include "core/clock.h"
#include "core/env.h"
#include "net/http_fetcher.h"
#include "store/store.h"

namespace qp::agent {

inline constexpr const char* kAgentVersion = "0.1.0";

class Agent {
 public:
  Agent(AgentConfig config, Env* env, Clock* clock);
  ~Agent();

  // Prepares the state directory (install id, trusted root, settings), loads policy and
  // components, recovers interrupted store operations and reconciles every component.
  Status Start();
  // Re-reads policy and component configuration (SIGHUP).
  Status Reload();

  // One check: refresh metadata, then decide and act for every component. `manual`: asked
  // by a person (reported as such; the schedule is unchanged).
  Status Check();
  // Installs now, whatever the setting, deferral or rollout percentage (not a halted or
  // revoked one): `what` is a component name or an improvement id "comp/base/label".
  Status InstallNow(const std::string& what);
  // Installs from an offline bundle (quietpatch-repo bundle): its metadata is verified
  // from this device's trusted root exactly as online, then what it offers is installed
  // as if asked by the person (rollout percentage, setting and deferral aside).
  Status InstallBundle(const std::string& path);
  // Returns the component to its previous state and keeps it there (until a newer
  // improvement or the next full update).
  Status RemoveNow(const std::string& component);
  // kFailedPrecondition "locked by policy" when a managed policy forces the setting.
  Status SetAutoInstall(bool on);

  nlohmann::json StatusJson();
  nlohmann::json HistoryJson();

  // Delivers queued reports; the server's retry hint (seconds) when it refused.
  Status FlushReports(long* retry_after);

  // Long-polls the server's watch endpoint with the trusted timestamp version: true when
  // newer metadata is published, false at the timeout; kUnsupported when the server has
  // no watch endpoint; kIo otherwise (or when `cancel` was set).
  Result<bool> Watch(const std::atomic<bool>* cancel);

  // The daemon's loop until `stop`: check at start, then on watch wake-ups or every
  // interval (+ jitter), backing off exponentially after failures.
  void Run(const std::atomic<bool>& stop);
  // Wakes Run() for an immediate check.
  void RequestCheck();

  const AgentConfig& config() const { return config_; }

 private:
  struct ComponentView {
    std::string last_error;
    std::optional<Improvement> offered;  // what is available / deferred / halted
    std::string offered_state;           // available, deferred, halted
    WallTime deferred_until;
    std::vector<std::string> installed_cves;
    std::string installed_urgency;
    std::string last_reported;  // "<state>/<improvement>/<error>", to report changes once
  };

  Status CheckLocked(const std::string& only_install);
  Status InstallImprovement(const store::ComponentConfig& c, const store::ComponentStatus& st,
                            const Improvement& imp, tuf::Updater& updater);
  Result<std::string> DownloadPatch(const Improvement& imp, tuf::Updater& updater);
  void Report(const store::ComponentConfig& c, const std::string& base, const std::string& label,
              const std::string& state, const std::string& error,
              const std::vector<store::ProcessRef>& restart = {});
  bool EffectiveAutoInstall() const;
  Status SaveAgentState();
  // kNotFound is not an error (first start); kCorrupt when the file cannot be read.
  Status LoadAgentState();
  std::string MetadataDir() const;
  std::uint64_t TrustedTimestampVersion();

  AgentConfig config_;
  Env* env_;
  Clock* clock_;
  std::recursive_mutex mu_;
  std::string install_id_;
  Settings settings_;
  Policy policy_;
  std::vector<store::ComponentConfig> components_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<ReportQueue> reports_;
  std::unique_ptr<net::HttpFetcher> http_;
  std::vector<Improvement> improvements_;
  contract::Rollout rollout_;
  std::map<std::string, WallTime> first_seen_;
  // Improvements the person removed: not installed again automatically (component -> label).
  std::map<std::string, std::string> declined_;
  std::map<std::string, ComponentView> views_;
  std::optional<WallTime> last_check_;
  std::string last_check_error_;

  std::mutex wake_mu_;
  std::condition_variable wake_;
  bool check_requested_ = false;
  std::atomic<bool> cancel_watch_{false};
  tuf::Fetcher* bundle_ = nullptr;  // set while installing from a bundle
};

}  // namespace qp::agent
