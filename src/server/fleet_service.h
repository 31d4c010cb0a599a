// What quietpatch-server does, apart from speaking HTTP: enrolls devices and stores the
// reports they sign (device_gate.h; validated, rate-limited per device, acknowledged once
// stored; anything unsigned is refused uncounted), halts a rollout by itself when
// failures or rollbacks cross the rule, applies authenticated rollout changes with the
// online rollout key, re-signs the timestamp before it expires, keeps the audit log, and
// builds the fleet views and metrics. Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/env.h"
#include "online/repo_dir.h"
#include "server/audit_log.h"
#include "server/device_gate.h"
#include "server/report_store.h"
#include "server/repository_host.h"
#include "server/server_config.h"

namespace qp::server {

struct ApiResponse {
  int status = 200;
  std::string body;  // JSON
  long retry_after = 0;
};

inline ApiResponse JsonResponse(int status, const nlohmann::json& j) {
  return ApiResponse{status, j.dump(), 0};
}
inline ApiResponse ErrorResponse(int status, const std::string& message) {
  return JsonResponse(status, nlohmann::json{{"error", message}});
}

class FleetService {
 public:
  FleetService(ServerConfig config, std::unique_ptr<ReportStore> store, Env* env, Clock* clock);

  // POST /v1/enroll (device_gate.h): 200 {"status": "accepted"} or 202 pending.
  ApiResponse Enroll(const SignedRequest& request, const std::string& peer);
  // POST /v1/reports, signed by an accepted device. 200 {"stored": K} only after the
  // events are committed; 401/403 (nothing stored) otherwise. `reply` gets the answer,
  // before this returns when it is known at once, else once the events are committed
  // (then on the database's writer thread, or through `defer` when the auto-halt rule
  // has to look at the fleet first). The second form waits for it.
  void PostReports(const SignedRequest& request, std::function<void(ApiResponse)> reply);
  ApiResponse PostReports(const SignedRequest& request);
  // Returns once every report posted before has had its answer given (or deferred).
  void FlushReports() { store_->Flush(); }
  // A signed GET /v1/watch: 200 with the accepted device's install id in `install_id` (its
  // watches get a share of their own), or the 401/403 to answer.
  ApiResponse AuthenticateWatch(const SignedRequest& request, std::string* install_id);
  // The operator's device management, admin token only (each action audited):
  //   POST /v1/admin/enrollments {"uses", "days", "require_accept"?, "note"?} -> the token
  //   GET  /v1/admin/enrollments
  //   POST /v1/admin/enrollments/revoke {"id"}      (and every device enrolled with it)
  //   GET  /v1/admin/devices
  //   POST /v1/admin/devices/accept {"id"}, /v1/admin/devices/revoke {"id"}
  ApiResponse AdminDevices(std::string_view path, bool post, std::string_view authorization,
                           std::string_view body, const std::string& peer);
  // POST /v1/admin/rollout {"id", "percent"?, "halted"?, "reason"?} with a valid token.
  // An instance that may not sign hands it to the one that may (repository_host.h).
  ApiResponse AdminRollout(std::string_view authorization, std::string_view body,
                           const std::string& peer);
  // The rollout change itself, as the signer (the token already checked).
  ApiResponse ApplyRollout(std::string_view body, const std::string& peer);
  ApiResponse AdminAudit(std::string_view authorization);
  // GET /v1/fleet/improvements, with the viewer or the admin token; the rollout history
  // (audit entries) only with the admin token.
  ApiResponse FleetImprovements(std::string_view authorization);
  // GET /metrics (Prometheus text); `watchers` from the HTTP layer.
  std::string Metrics(std::size_t watchers);

  // Re-signs the timestamp when it expires within the configured margin (called every
  // minute). Returns true when it published. Only the instance that may sign does.
  bool MaybeResignTimestamp();

  // The repository's writer (by default this instance alone; the shared repository when
  // the repository lives in the database). Set before the server starts.
  void UseRepositoryHost(RepositoryHost* host) { host_ = host; }
  // Every second on the signer of a shared repository: the auto-halt rule over every
  // improvement's counts (reports reach every instance; only the signer halts).
  void SignerTick();

  // Constant-time check of a bearer token against the admin token.
  bool Authorized(std::string_view authorization) const;
  // The admin or the viewer token.
  bool MayView(std::string_view authorization) const;

  void CountRequest(const std::string& route, int status, double seconds);
  std::function<void()> on_publish;  // the HTTP layer wakes watchers
  // Runs work that may wait on the database off the thread that calls it (the HTTP layer's
  // worker pool); unset: on that thread.
  std::function<void(std::function<void()>)> defer;

 private:
  void Audit(const std::string& action, const std::string& peer, const nlohmann::json& details,
             const std::string& result);
  // The auto-halt rule for these improvements: one look at the fleet's counts (a query over
  // every device) at a time. Ids named while a look runs wait for its next round, so a burst
  // of failure reports (a bad rollout, or a flood from enrolled devices) costs the database
  // one query per round, not one per report.
  void CheckAutoHalt(std::set<std::string> improvement_ids);
  // One round: the counts, then each improvement against the rule.
  void CheckAutoHaltRound(const std::set<std::string>& improvement_ids);
  bool RateLimited(const std::string& install_id, long* retry_after);

  ServerConfig config_;
  std::unique_ptr<ReportStore> store_;
  Env* env_;
  Clock* clock_;
  online::RepoPaths paths_;
  std::string admin_token_;
  std::string viewer_token_;
  DeviceGate gate_;
  AuditLog audit_;
  LocalRepositoryHost local_host_;
  RepositoryHost* host_ = &local_host_;
  WallTime last_sweep_{};
  std::mutex rate_mu_;
  struct Bucket {
    double tokens = 0;
    std::chrono::steady_clock::time_point at;
  };
  std::map<std::string, Bucket> buckets_;
  std::mutex metrics_mu_;
  std::map<std::string, std::uint64_t> requests_;              // "route,code" -> count
  std::map<std::string, std::vector<std::uint64_t>> latency_;  // route -> bucket counts
  std::map<std::string, std::uint64_t> reports_by_state_;
  std::uint64_t reports_rejected_ = 0;
  std::uint64_t auto_halts_ = 0;
  std::uint64_t auto_halt_rounds_ = 0;
  std::mutex halt_mu_;
  std::set<std::string> halt_pending_;  // named since the running round began
  bool halt_running_ = false;
};

}  // namespace qp::server
