#include "server/fleet_service.h"

#include <spdlog/spdlog.h>

#include <cmath>
#include <future>

#include "contract/improvement_id.h"
#include "contract/report_state.h"
#include "contract/rollout.h"
#include "contract/timestamp_peek.h"
#include "core/durable_file.h"
#include "core/hash.h"
#include "online/online_repository.h"
#include "server/report_parser.h"

namespace qp::server {

using Json = nlohmann::json;

namespace {

constexpr double kLatencyBuckets[] = {0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 300};

}  // namespace

namespace {

// A bearer token from a 0600 file ("" when unset or refused, with the reason logged).
std::string ReadTokenFile(Env* env, const std::string& path, const char* what) {
  if (path.empty()) return "";
  auto info = env->Stat(path);
  if (info.ok() && (info->mode & 077) != 0) {
    spdlog::error("{} token file {} is readable by others; refused", what, path);
    return "";
  }
  auto bytes = ReadFileLimited(env, path, 4096);
  if (!bytes.ok()) {
    spdlog::error("{} token: {}; refused", what, bytes.error().ToString());
    return "";
  }
  std::string token(bytes->begin(), bytes->end());
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
  return token;
}

// Constant-time: compares digests, so the time depends on neither token nor its length.
bool BearerMatches(std::string_view authorization, const std::string& token) {
  static constexpr std::string_view kBearer = "Bearer ";
  if (token.size() < 16 || authorization.rfind(kBearer, 0) != 0) return false;
  auto a = Sha256Of(authorization.substr(kBearer.size()));
  auto b = Sha256Of(std::string_view(token));
  return ConstantTimeEquals(a, b);
}

int StatusFor(const Error& e) {
  switch (e.code()) {
    case ErrorCode::kVerificationFailed:
      return 401;
    case ErrorCode::kFailedPrecondition:
      return 403;
    case ErrorCode::kInvalidArgument:
    case ErrorCode::kCorrupt:
      return 400;
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kTooLarge:
      return 413;
    default:
      return 503;
  }
}

}  // namespace

FleetService::FleetService(ServerConfig config, std::unique_ptr<ReportStore> store, Env* env,
                           Clock* clock)
    : config_(std::move(config)),
      store_(std::move(store)),
      env_(env),
      clock_(clock),
      gate_(store_.get(), clock),
      audit_(env, clock, config_.audit_log, store_->audit_table()) {
  paths_ = {config_.repo_dir, config_.keys_dir};
  admin_token_ = ReadTokenFile(env_, config_.admin_token_file, "admin");
  viewer_token_ = ReadTokenFile(env_, config_.viewer_token_file, "viewer");
}

bool FleetService::Authorized(std::string_view authorization) const {
  return BearerMatches(authorization, admin_token_);
}

bool FleetService::MayView(std::string_view authorization) const {
  return BearerMatches(authorization, admin_token_) || BearerMatches(authorization, viewer_token_);
}

bool FleetService::RateLimited(const std::string& install_id, long* retry_after) {
  std::lock_guard<std::mutex> lock(rate_mu_);
  auto now = std::chrono::steady_clock::now();
  double rate = config_.report_rate_per_minute / 60.0;
  double burst = config_.report_rate_per_minute;
  auto it = buckets_.find(install_id);
  if (it == buckets_.end()) {
    if (buckets_.size() > 200000) buckets_.clear();  // bounded memory under a flood of ids
    it = buckets_.emplace(install_id, Bucket{burst, now}).first;
  }
  Bucket& b = it->second;
  b.tokens = std::min(burst, b.tokens + rate * std::chrono::duration<double>(now - b.at).count());
  b.at = now;
  if (b.tokens < 1) {
    *retry_after = static_cast<long>(std::ceil((1 - b.tokens) / rate));
    return true;
  }
  b.tokens -= 1;
  return false;
}

ApiResponse FleetService::Enroll(const SignedRequest& request, const std::string& peer) {
  auto device = gate_.Enroll(request);
  if (!device.ok()) {
    if (device.error().code() == ErrorCode::kFailedPrecondition) {
      Audit("enroll", peer, Json{{"device", request.signature.device}},
            "refused: " + device.error().message());
    }
    return ErrorResponse(StatusFor(device.error()), device.error().message());
  }
  Audit("enroll", peer, Json{{"device", device->install_id}, {"enrollment", device->enrollment_id}},
        device->status);
  return JsonResponse(device->status == kDeviceAccepted ? 200 : 202,
                      Json{{"status", device->status}, {"install_id", device->install_id}});
}

ApiResponse FleetService::AuthenticateWatch(const SignedRequest& request, std::string* install_id) {
  auto device = gate_.Authenticate(request);
  if (!device.ok()) return ErrorResponse(StatusFor(device.error()), device.error().message());
  *install_id = device->install_id;
  return JsonResponse(200, nlohmann::json::object());
}

ApiResponse FleetService::PostReports(const SignedRequest& request) {
  std::promise<ApiResponse> answer;
  PostReports(request, [&answer](ApiResponse r) { answer.set_value(std::move(r)); });
  return answer.get_future().get();
}

void FleetService::PostReports(const SignedRequest& request,
                               std::function<void(ApiResponse)> reply) {
  std::optional<NonceClaim> claim;  // claimed with the events, when the database keeps nonces
  auto device = gate_.Authenticate(request, &claim);
  if (!device.ok()) {
    {
      std::lock_guard<std::mutex> lock(metrics_mu_);
      ++reports_rejected_;
    }
    return reply(ErrorResponse(StatusFor(device.error()), device.error().message()));
  }
  auto report = ParseReport(request.body);
  if (!report.ok()) {
    {
      std::lock_guard<std::mutex> lock(metrics_mu_);
      ++reports_rejected_;
    }
    return reply(ErrorResponse(report.error().code() == ErrorCode::kTooLarge ? 413 : 400,
                               report.error().message()));
  }
  if (report->install_id != device->install_id) {
    return reply(ErrorResponse(403, "a device reports for itself only"));
  }
  long retry_after = 0;
  if (RateLimited(report->install_id, &retry_after)) {
    ApiResponse r = ErrorResponse(429, "too many reports from this install id");
    r.retry_after = std::max(1L, retry_after);
    return reply(r);
  }
  // Counted once stored; the improvements with failures are checked against the rule.
  std::map<std::string, std::uint64_t> states;
  std::set<std::string> touched;
  for (const auto& e : report->events) {
    states[e.state]++;
    auto state = contract::ParseReportState(e.state);
    if (!e.ImprovementId().empty() && state && contract::IsFailureState(*state)) {
      touched.insert(e.ImprovementId());
    }
  }
  const std::int64_t received = claim ? claim->now : UnixSeconds(clock_->Now());
  store_->StoreAsync(
      std::move(report->events), received, std::move(claim),
      [this, reply = std::move(reply), states = std::move(states),
       touched = std::move(touched)](Result<int> stored) mutable {
        if (!stored.ok() && stored.error().code() == ErrorCode::kAlreadyExists) {
          {
            std::lock_guard<std::mutex> lock(metrics_mu_);
            ++reports_rejected_;
          }
          return reply(ErrorResponse(401, "replayed request"));
        }
        if (!stored.ok()) {
          spdlog::error("reports: {}", stored.error().ToString());
          ApiResponse r = ErrorResponse(503, "reports are not being stored right now");
          r.retry_after = 30;
          return reply(r);
        }
        {
          std::lock_guard<std::mutex> lock(metrics_mu_);
          for (const auto& [state, n] : states) reports_by_state_[state] += n;
        }
        ApiResponse ok = JsonResponse(200, Json{{"stored", *stored}});
        if (touched.empty()) return reply(ok);
        auto check = [this, reply = std::move(reply), touched = std::move(touched), ok] {
          CheckAutoHalt(touched);
          reply(ok);
        };
        if (defer) return defer(std::move(check));
        check();
      });
}

void FleetService::SignerTick() {
  // The counts are one query over every device: every 5 s is soon enough to halt.
  WallTime now = clock_->Now();
  if (now - last_sweep_ < std::chrono::seconds(5)) return;
  last_sweep_ = now;
  auto counts = store_->DeviceCounts();
  if (!counts.ok()) return;
  std::set<std::string> ids;
  for (const auto& [id, states] : *counts) {
    for (const auto& [name, n] : states) {
      auto state = contract::ParseReportState(name);
      if (n > 0 && state && contract::IsFailureState(*state)) ids.insert(id);
    }
  }
  if (!ids.empty()) CheckAutoHalt(std::move(ids));
}

void FleetService::CheckAutoHalt(std::set<std::string> ids) {
  if (!host_->MaySign()) return;  // the signer's sweep (SignerTick) halts
  {
    std::lock_guard<std::mutex> lock(halt_mu_);
    halt_pending_.merge(ids);
    if (halt_running_) return;  // the running look takes them in its next round
    halt_running_ = true;
  }
  for (;;) {
    std::set<std::string> round;
    {
      std::lock_guard<std::mutex> lock(halt_mu_);
      if (halt_pending_.empty()) {
        halt_running_ = false;
        return;
      }
      round.swap(halt_pending_);
    }
    CheckAutoHaltRound(round);
  }
}

void FleetService::CheckAutoHaltRound(const std::set<std::string>& ids) {
  {
    std::lock_guard<std::mutex> mlock(metrics_mu_);
    ++auto_halt_rounds_;
  }
  auto counts = store_->DeviceCounts();
  if (!counts.ok()) return;
  for (const auto& id : ids) {
    auto it = counts->find(id);
    if (it == counts->end()) continue;
    int total = 0, bad = 0;
    for (const auto& [name, n] : it->second) {
      total += n;
      auto state = contract::ParseReportState(name);
      if (state && contract::IsFailureState(*state)) bad += n;
    }
    if (total < config_.auto_halt_min_reports ||
        bad * 100.0 <= config_.auto_halt_max_failure_percent * total) {
      continue;
    }
    auto parsed_id = contract::ImprovementId::Parse(id);
    if (!parsed_id.ok()) continue;
    std::string reason = "auto-halt: " + std::to_string(bad) + " of " + std::to_string(total) +
                         " devices failed or rolled back (rule: at least " +
                         std::to_string(config_.auto_halt_min_reports) + " reports, more than " +
                         std::to_string(static_cast<int>(config_.auto_halt_max_failure_percent)) +
                         "%)";
    bool halted_now = false;
    Status s = host_->Change([&]() -> Status {
      // Read under the change: the rollout as the repository holds it now.
      QP_ASSIGN_OR_RETURN(auto rollout, online::ReadRollout(env_, clock_, paths_));
      const contract::RolloutEntry* entry = rollout.Find(id);
      if (entry == nullptr || entry->halted) return OkStatus();
      halted_now = true;
      return online::SetRollout(env_, clock_, paths_, *parsed_id, std::nullopt, true, reason);
    });
    if (s.ok() && !halted_now) continue;
    Audit("auto-halt", "server", Json{{"id", id}, {"reason", reason}},
          s.ok() ? "ok" : s.error().ToString());
    if (s.ok()) {
      spdlog::warn("{}: {}", id, reason);
      {
        std::lock_guard<std::mutex> mlock(metrics_mu_);
        ++auto_halts_;
      }
      if (on_publish) on_publish();
    } else {
      spdlog::error("auto-halt of {} failed: {}", id, s.error().ToString());
    }
  }
}

void FleetService::Audit(const std::string& action, const std::string& peer, const Json& details,
                         const std::string& result) {
  (void)audit_.Record(action, peer, details, result);
}

ApiResponse FleetService::AdminRollout(std::string_view authorization, std::string_view body,
                                       const std::string& peer) {
  if (!Authorized(authorization)) {
    audit_.Refused("rollout", peer, "invalid token");
    return ErrorResponse(401, "invalid or missing bearer token");
  }
  if (!host_->MaySign()) {
    if (auto answer = host_->Forward(std::string(body), peer)) {
      return ApiResponse{answer->status, answer->body, 0};
    }
  }
  return ApplyRollout(body, peer);
}

ApiResponse FleetService::ApplyRollout(std::string_view body, const std::string& peer) {
  Json j = Json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("id") || !j["id"].is_string()) {
    return ErrorResponse(
        400, "expected {\"id\": \"component/base/label\", \"percent\"?, \"halted\"?, \"reason\"?}");
  }
  std::optional<int> percent;
  std::optional<bool> halted;
  if (j.contains("percent")) {
    if (!j["percent"].is_number_integer()) return ErrorResponse(400, "percent: expected 0..100");
    percent = j["percent"].get<int>();
  }
  if (j.contains("halted")) {
    if (!j["halted"].is_boolean()) return ErrorResponse(400, "halted: expected true or false");
    halted = j["halted"].get<bool>();
  }
  std::string reason =
      j.value("reason", std::string(halted.value_or(false) ? "halted by an operator" : ""));
  Status s;
  auto id = contract::ImprovementId::Parse(j["id"].get<std::string>());
  if (!id.ok()) {
    s = id.error();
  } else {
    s = host_->Change(
        [&] { return online::SetRollout(env_, clock_, paths_, *id, percent, halted, reason); });
  }
  Audit("rollout", peer, j, s.ok() ? "ok" : s.error().ToString());
  if (!s.ok()) {
    int status = s.error().code() == ErrorCode::kNotFound             ? 404
                 : s.error().code() == ErrorCode::kInvalidArgument    ? 400
                 : s.error().code() == ErrorCode::kFailedPrecondition ? 503
                                                                      : 500;
    return ErrorResponse(status, s.error().ToString());
  }
  if (on_publish) on_publish();
  auto rollout = online::ReadRollout(env_, clock_, paths_);
  if (!rollout.ok()) return ErrorResponse(500, rollout.error().ToString());
  return JsonResponse(200, rollout->ToJson());
}

ApiResponse FleetService::AdminAudit(std::string_view authorization) {
  if (!Authorized(authorization)) return ErrorResponse(401, "invalid or missing bearer token");
  return JsonResponse(200, audit_.Recent());
}

ApiResponse FleetService::FleetImprovements(std::string_view authorization) {
  if (!MayView(authorization)) {
    return ErrorResponse(401, "the fleet views need the viewer or the admin token");
  }
  const bool admin = Authorized(authorization);
  auto improvements = online::ListImprovements(env_, clock_, paths_);
  auto rollout = online::ReadRollout(env_, clock_, paths_);
  auto counts = store_->DeviceCounts();
  for (const Error* e :
       {improvements.ok() ? nullptr : &improvements.error(),
        rollout.ok() ? nullptr : &rollout.error(), counts.ok() ? nullptr : &counts.error()}) {
    if (e != nullptr) return ErrorResponse(500, e->ToString());
  }
  // Rollout history and halts from the audit log.
  std::map<std::string, Json> history;
  if (admin) {
    for (const auto& line : audit_.Recent()) {
      if (line.contains("details") && line["details"].is_object() &&
          line["details"].contains("id") && line["details"]["id"].is_string()) {
        history[line["details"]["id"].get<std::string>()].push_back(line);
      }
    }
  }
  Json list = Json::array();
  for (const auto& [id, published] : *improvements) {
    const contract::ImprovementTarget& t = published.target;
    Json devices = Json::object();
    for (contract::ReportState state : contract::kAllReportStates) {
      devices[std::string(contract::ReportStateName(state))] = 0;
    }
    if (auto c = counts->find(id); c != counts->end()) {
      for (const auto& [state, n] : c->second) devices[state] = n;
    }
    // Auto-install off: the agent reports such a device as "available".
    devices["opted_out"] = devices["available"];
    Json reasons = Json::array();
    if (auto r = store_->FailureReasons(id, 5); r.ok()) {
      for (const auto& [error, n] : *r) reasons.push_back(Json{{"error", error}, {"devices", n}});
    }
    Json series = Json::array();
    if (auto s = store_->ProtectedSeries(id); s.ok()) {
      for (const auto& [time, n] : *s) series.push_back(Json::array({time, n}));
    }
    const contract::RolloutEntry* entry = rollout->Find(id);
    Json r = entry ? Json{{"percent", entry->percent},
                          {"halted", entry->halted},
                          {"reason", entry->reason}}
                   : Json{{"percent", 0}, {"halted", false}, {"reason", ""}};
    list.push_back(Json{{"id", id},
                        {"component", t.id.component},
                        {"base", t.id.base},
                        {"label", t.id.label},
                        {"cves", t.cves},
                        {"urgency", t.urgency},
                        {"exploited", t.exploited},
                        {"revoked", t.revoked},
                        {"patch_bytes", published.smallest_patch_bytes},
                        {"published", t.published},
                        {"rollout", r},
                        {"devices", devices},
                        {"failure_reasons", reasons},
                        {"protected_series", series},
                        {"history", history.count(id) ? history[id] : Json::array()}});
  }
  return JsonResponse(200, Json{{"generated", UnixSeconds(clock_->Now())}, {"improvements", list}});
}

void FleetService::CountRequest(const std::string& route, int status, double seconds) {
  std::lock_guard<std::mutex> lock(metrics_mu_);
  requests_[route + "\",code=\"" + std::to_string(status)]++;
  auto& buckets = latency_[route];
  if (buckets.empty()) buckets.assign(std::size(kLatencyBuckets) + 2, 0);  // + inf, + count
  for (std::size_t i = 0; i < std::size(kLatencyBuckets); ++i) {
    if (seconds <= kLatencyBuckets[i]) buckets[i]++;
  }
  buckets[std::size(kLatencyBuckets)]++;
}

std::string FleetService::Metrics(std::size_t watchers) {
  std::string out;
  std::lock_guard<std::mutex> lock(metrics_mu_);
  out +=
      "# HELP qp_http_requests_total HTTP requests by route and status.\n# TYPE "
      "qp_http_requests_total counter\n";
  for (const auto& [key, n] : requests_) {
    out += "qp_http_requests_total{route=\"" + key + "\"} " + std::to_string(n) + "\n";
  }
  out +=
      "# HELP qp_http_request_duration_seconds Request latency.\n# TYPE "
      "qp_http_request_duration_seconds histogram\n";
  for (const auto& [route, b] : latency_) {
    for (std::size_t i = 0; i < std::size(kLatencyBuckets); ++i) {
      char le[32];
      std::snprintf(le, sizeof(le), "%g", kLatencyBuckets[i]);
      out += "qp_http_request_duration_seconds_bucket{route=\"" + route + "\",le=\"" + le + "\"} " +
             std::to_string(b[i]) + "\n";
    }
    out += "qp_http_request_duration_seconds_bucket{route=\"" + route + "\",le=\"+Inf\"} " +
           std::to_string(b[std::size(kLatencyBuckets)]) + "\n";
    out += "qp_http_request_duration_seconds_count{route=\"" + route + "\"} " +
           std::to_string(b[std::size(kLatencyBuckets)]) + "\n";
  }
  out +=
      "# HELP qp_watchers Open watch (long-poll) requests.\n# TYPE qp_watchers "
      "gauge\nqp_watchers " +
      std::to_string(watchers) + "\n";
  out +=
      "# HELP qp_reports_total Report events received by state.\n# TYPE qp_reports_total counter\n";
  for (const auto& [state, n] : reports_by_state_) {
    out += "qp_reports_total{state=\"" + state + "\"} " + std::to_string(n) + "\n";
  }
  out += "# TYPE qp_reports_rejected_total counter\nqp_reports_rejected_total " +
         std::to_string(reports_rejected_) + "\n";
  out += "# TYPE qp_auto_halts_total counter\nqp_auto_halts_total " + std::to_string(auto_halts_) +
         "\n";
  out += "# TYPE qp_auto_halt_rounds_total counter\nqp_auto_halt_rounds_total " +
         std::to_string(auto_halt_rounds_) + "\n";
  if (auto rollout = online::ReadRollout(env_, clock_, paths_); rollout.ok()) {
    out +=
        "# HELP qp_rollout_percent Rollout percentage per improvement.\n# TYPE qp_rollout_percent "
        "gauge\n";
    for (const auto& [id, e] : rollout->improvements) {
      out += "qp_rollout_percent{improvement=\"" + id + "\"} " + std::to_string(e.percent) + "\n";
      out += "qp_rollout_halted{improvement=\"" + id + "\"} " + (e.halted ? "1" : "0") + "\n";
    }
  }
  return out;
}

bool FleetService::MaybeResignTimestamp() {
  if (config_.keys_dir.empty() || !host_->MaySign()) return false;
  auto bytes = ReadFileLimited(env_, JoinPath(config_.repo_dir, "metadata/timestamp.json"),
                               contract::kMaxTimestampBytes);
  if (!bytes.ok()) return false;
  auto timestamp = contract::PeekTimestamp(*bytes);
  if (!timestamp.ok()) {
    spdlog::error("timestamp.json: {}", timestamp.error().ToString());
    return false;
  }
  if (timestamp->expires - clock_->Now() > std::chrono::hours(config_.timestamp_resign_hours)) {
    return false;
  }
  Status s = host_->Change([&] { return online::ResignTimestamp(env_, clock_, paths_); });
  if (!s.ok()) {
    spdlog::error("re-signing the timestamp: {}", s.error().ToString());
    return false;
  }
  spdlog::info("timestamp re-signed");
  if (on_publish) on_publish();
  return true;
}

}  // namespace qp::server
