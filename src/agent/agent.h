// The agent on each device: it ties the pieces together. Each check refreshes the TUF
// metadata (check.h), decides for every configured component, installs through the store
// (install.h), reports every state change (report_queue.h) and keeps what it learnt for
// the person's view (status_view.h); the run loop (run_loop.h) says when. Its network
// collaborators and its clock are injected (transport.h), so it runs in tests without
// sockets or sleeping.
// Methods are thread-safe (one lock; a check holds it while it runs); Watch() runs without
// the lock so that the control socket stays responsive.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "agent/agent_config.h"
#include "agent/agent_state.h"
#include "agent/check.h"
#include "agent/device_identity.h"
#include "agent/improvements.h"
#include "agent/install.h"
#include "agent/report_queue.h"
#include "agent/run_loop.h"
#include "agent/status_view.h"
#include "agent/transport.h"
#include "core/clock.h"
#include "core/env.h"
#include "store/store.h"

namespace qp::agent {

inline constexpr const char* kAgentVersion = "0.1.0";

class Agent final : public CheckTarget {
 public:
  // `transport`'s collaborators outlive the agent.
  Agent(AgentConfig config, Env* env, Clock* clock, Transport transport);
  ~Agent() override;

  // Prepares the state directory (install id, trusted root, settings), loads policy and
  // components, recovers interrupted store operations and reconciles every component.
  Status Start();
  // Re-reads policy and component configuration (SIGHUP).
  Status Reload();

  // One check: refresh metadata, then decide and act for every component.
  Status Check() override;
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

  // Delivers queued reports (enrolling this device first if it is not yet); the server's
  // retry hint (seconds) when it refused.
  Status FlushReports(long* retry_after) override;
  std::size_t PendingReports() override;

  // Long-polls the server's watch endpoint with the trusted timestamp version: true when
  // newer metadata is published, false at the timeout; kUnsupported when the server has
  // no watch endpoint; kIo otherwise (or when `cancel` was set).
  Result<bool> Watch(const std::atomic<bool>* cancel) override;
  // After work (a full check, an install or removal, reports sent): gives back the memory
  // it used (core/memory_release.h), so that an idle agent holds little.
  void Rest() override;

  // The daemon's loop until `stop` (run_loop.h).
  void Run(const std::atomic<bool>& stop);
  // Wakes Run() for an immediate check.
  void RequestCheck();

  const AgentConfig& config() const { return config_; }

 private:
  Status CheckLocked(const Request& request);
  // Fails the check: every component reports it, status shows it.
  Status FailCheck(const Error& e);
  // A check with nothing published since the last full one (the probe said 304): the
  // decisions again, on the offer and the store's states already known (no metadata read,
  // no signature checked, no file hashed). False when that is not enough (a fix to install
  // or remove, a state not known yet, metadata close to expiry): the full check runs.
  bool IdleCheck(const Request& request, WallTime now);
  DecisionInput InputFor(const store::ComponentConfig& c, const store::ComponentStatus& st,
                         WallTime now);
  // `updater`: null only for decisions that install nothing.
  void ApplyDecision(const store::ComponentConfig& c, const store::ComponentStatus& st,
                     const Decision& d, tuf::Updater* updater, Status* first_error);
  Status InstallImprovement(const store::ComponentConfig& c, const store::ComponentStatus& st,
                            const Improvement& imp, tuf::Updater& updater);
  // Reports the state of an installed improvement: protected, or installed while processes
  // still run the old code.
  // A full update (or dpkg) replaced the component's improvement: reported once.
  void ReportSuperseded(const store::ComponentConfig& c, const store::ComponentStatus& st);
  void ReportInstalled(const store::ComponentConfig& c);
  void Report(const store::ComponentConfig& c, const std::string& base, const std::string& label,
              const std::string& state, const std::string& error,
              const std::vector<store::ProcessRef>& restart = {});
  bool EffectiveAutoInstall() const;
  // Work begins (a full check, a removal, reports to send): what Rest() gave back is read
  // ahead again as usual.
  void BeginWork();
  Status SaveState();
  // Enrolls this device's key with the operator's token, once; kFailedPrecondition while
  // there is no token or the operator has not accepted the device yet.
  Status EnsureEnrolled();
  // Header lines signing a request (`method` to `url` with `body`).
  Result<std::vector<std::string>> Sign(const std::string& method, const std::string& url,
                                        const std::string& body);
  std::string MetadataDir() const;
  std::uint64_t TrustedTimestampVersion();
  // The repository mirror and the service instance in use (config's lists), and a move to
  // the next after a failure.
  std::string RepositoryUrl() const;
  std::string ServerUrl() const;
  void NextRepository();
  void NextServer();

  AgentConfig config_;
  Env* env_;
  Clock* clock_;
  Transport transport_;
  std::recursive_mutex mu_;
  std::optional<DeviceIdentity> identity_;
  std::string install_id_;
  std::string enrollment_error_;
  Settings settings_;
  Policy policy_;
  std::vector<store::ComponentConfig> components_;
  std::vector<store::InactiveComponent> inactive_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<ReportQueue> reports_;
  Installer installer_;
  Offer offer_;
  // What an idle check starts from: the ETag of the timestamp.json the last full check
  // verified (empty: none), and until when that check's outcome may be reused.
  struct Idle {
    std::string etag;
    WallTime fresh_until;
  } idle_;
  AgentState state_;
  std::map<std::string, ComponentView> views_;
  std::string last_check_error_;
  RunLoop loop_;
  tuf::Fetcher* bundle_ = nullptr;  // set while installing from a bundle
  std::atomic<std::size_t> repository_at_{0}, server_at_{0};
  bool worked_ = true;  // since the last Rest(); starting is work
};

}  // namespace qp::agent
