#include "agent/agent.h"

#include <spdlog/spdlog.h>

#include <random>

#include "contract/device_auth.h"
#include "contract/timestamp_peek.h"
#include "core/durable_file.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/memory_release.h"
#include "tuf/bundle.h"

namespace qp::agent {

using Json = nlohmann::json;

namespace {

// A watch request may take the server's timeout plus this before the agent gives up on it.
constexpr long kWatchGraceSeconds = 15;
// How long the outcome of a full check may be reused by checks that find nothing published.
constexpr std::chrono::hours kMaxIdleReuse{6};
// An offline bundle is read whole into memory.
constexpr std::uint64_t kMaxBundleBytes = std::uint64_t{2} << 30;

// An enrollment token file is one line.
constexpr std::uint64_t kMaxTokenBytes = 4096;
// How much of a refusal's body goes into an error message.
constexpr std::size_t kMaxQuotedBody = 200;

// The request-target of an absolute URL ("http://h:1/x/v1/reports" -> "/x/v1/reports").
std::string UrlTarget(const std::string& url) {
  std::size_t scheme = url.find("://");
  std::size_t slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
  return slash == std::string::npos ? "/" : url.substr(slash);
}

RunLoop::Options LoopOptions(const AgentConfig& config) {
  RunLoop::Options o;
  o.schedule = {config.interval, config.jitter, config.max_backoff};
  o.watch = config.watch && !config.server_url.empty();
  return o;
}

}  // namespace

Agent::Agent(AgentConfig config, Env* env, Clock* clock, Transport transport)
    : config_(std::move(config)),
      env_(env),
      clock_(clock),
      transport_(transport),
      installer_(env, transport.downloads, JoinPath(config_.state_dir, "downloads"),
                 config_.limits.patch),
      loop_(LoopOptions(config_), this, clock, std::random_device{}()) {
  if (config_.repository_urls.empty() && !config_.repository_url.empty()) {
    config_.repository_urls.push_back(config_.repository_url);
  }
  if (config_.server_urls.empty() && !config_.server_url.empty()) {
    config_.server_urls.push_back(config_.server_url);
  }
  if (config_.repository_urls.empty()) config_.repository_urls.emplace_back();
  // A random first mirror and instance: a fleet's load spreads over them.
  std::random_device random;
  repository_at_ = random() % config_.repository_urls.size();
  if (!config_.server_urls.empty()) server_at_ = random() % config_.server_urls.size();
}

Agent::~Agent() = default;

std::string Agent::RepositoryUrl() const {
  return config_.repository_urls[repository_at_ % config_.repository_urls.size()];
}

std::string Agent::ServerUrl() const {
  return config_.server_urls.empty() ? ""
                                     : config_.server_urls[server_at_ % config_.server_urls.size()];
}

void Agent::NextRepository() {
  if (config_.repository_urls.size() < 2) return;
  std::size_t now = ++repository_at_ % config_.repository_urls.size();
  spdlog::warn("agent: trying the repository at {}", config_.repository_urls[now]);
}

void Agent::NextServer() {
  if (config_.server_urls.size() < 2) return;
  std::size_t now = ++server_at_ % config_.server_urls.size();
  spdlog::warn("agent: trying the service at {}", config_.server_urls[now]);
}

std::string Agent::MetadataDir() const { return JoinPath(config_.state_dir, "metadata"); }

Status Agent::Start() {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  QP_RETURN_IF_ERROR(MakeDirs(env_, config_.state_dir, 0755));
  QP_RETURN_IF_ERROR(MakeDirs(env_, MetadataDir(), 0755));
  QP_RETURN_IF_ERROR(MakeDirs(env_, JoinPath(config_.state_dir, "downloads"), 0700));
  // This device's key and the install id derived from it: never a hardware id.
  QP_ASSIGN_OR_RETURN(auto identity, LoadOrCreateIdentity(env_, config_.state_dir));
  install_id_ = identity.install_id;
  identity_.emplace(std::move(identity));
  // The trusted root: copied from the configuration on first start, then TUF keeps it.
  std::string root = JoinPath(MetadataDir(), "root.json");
  if (!env_->Stat(root).ok()) {
    auto bytes = ReadFileLimited(env_, config_.trusted_root, tuf::kMaxRootBytes);
    if (!bytes.ok()) return bytes.error().WithContext("trusted root");
    QP_RETURN_IF_ERROR(WriteFileDurably(env_, root, *bytes, 0644));
  }
  QP_ASSIGN_OR_RETURN(settings_, LoadSettings(env_, config_.state_dir));
  reports_ =
      std::make_unique<ReportQueue>(env_, clock_, JoinPath(config_.state_dir, "reports.json"));
  QP_RETURN_IF_ERROR(reports_->Load());
  const std::string state_path = JoinPath(config_.state_dir, kAgentStateFile);
  if (auto state = LoadAgentState(env_, state_path); state.ok()) {
    state_ = std::move(state).value();
  } else {
    // The agent state (first-seen times for deferrals, removed improvements, CVEs installed)
    // is rebuilt from scratch; the unreadable file is kept beside it, and status says so.
    state_ = AgentState{};
    Status kept = env_->Rename(state_path, state_path + ".unreadable");
    last_check_error_ = "agent state " + state_path + " could not be read (" +
                        state.error().ToString() + "); started afresh" +
                        (kept.ok() ? ", the old file is " + state_path + ".unreadable" : "");
    spdlog::error("agent: {}", last_check_error_);
  }
  QP_RETURN_IF_ERROR(Reload());
  spdlog::info("agent: started, {} component(s), install id {}", components_.size(), install_id_);
  return OkStatus();
}

Status Agent::Reload() {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  QP_ASSIGN_OR_RETURN(policy_, LoadPolicy(env_, config_.config_dir));
  QP_ASSIGN_OR_RETURN(auto components, store::LoadComponentConfigs(env_, config_.components_dir));
  // Components that are Debian packages take their files from dpkg's database as it is now
  // (the apt hook reloads after every dpkg run).
  auto set = store::ResolvePackageComponents(env_, config_.dpkg_admin_dir, std::move(components));
  for (const auto& c : set.inactive) spdlog::warn("agent: {}: inactive: {}", c.name, c.reason);
  components_ = std::move(set.active);
  inactive_ = std::move(set.inactive);
  store::StoreOptions options;
  options.state_dir = JoinPath(config_.state_dir, "store");
  options.env = env_;
  options.clock = clock_;
  options.dpkg_admin_dir = config_.dpkg_admin_dir;
  options.held_source_bytes = config_.install_cache_bytes;
  QP_RETURN_IF_ERROR(MakeDirs(env_, options.state_dir, 0755));
  store_ = std::make_unique<store::Store>(options, components_);
  // Interrupted operations are finished first; then every component is compared with what
  // is on disk (a new base version supersedes its improvement at once).
  QP_RETURN_IF_ERROR(store_->RecoverAll());
  for (const auto& c : components_) {
    auto st = store_->Reconcile(c.name);
    if (!st.ok()) {
      views_[c.name].last_error = st.error().ToString();
      spdlog::error("agent: {}: {}", c.name, st.error().ToString());
      continue;
    }
    ReportSuperseded(c, *st);
  }
  return OkStatus();
}

void Agent::ReportSuperseded(const store::ComponentConfig& c, const store::ComponentStatus& st) {
  if (!st.superseded || !st.current.label.empty()) return;
  const store::Supersession& s = *st.superseded;
  if (state_.installed.erase(c.name) != 0) (void)SaveState();
  Report(c, s.base, s.label, "superseded", "superseded by " + s.by);
}

bool Agent::EffectiveAutoInstall() const {
  return policy_.auto_install.has_value() ? *policy_.auto_install : settings_.auto_install;
}

Status Agent::SaveState() {
  return SaveAgentState(env_, JoinPath(config_.state_dir, kAgentStateFile), state_);
}

void Agent::Report(const store::ComponentConfig& c, const std::string& base,
                   const std::string& label, const std::string& state, const std::string& error,
                   const std::vector<store::ProcessRef>& restart) {
  ComponentView& v = views_[c.name];
  std::string key = state + "/" + label + "/" + error + "/" + std::to_string(restart.size());
  if (key == v.last_reported) return;  // a state is reported once, not at every check
  v.last_reported = key;
  ReportEvent e{c.name, c.platform, base, label, state, error, {}};
  for (const auto& p : restart) e.restart_needed.emplace_back(p.pid, p.name);
  Status s = reports_->Enqueue(e);
  if (!s.ok()) spdlog::error("agent: report not queued: {}", s.error().ToString());
}

Status Agent::Check() {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  return CheckLocked(Request());
}

Status Agent::InstallNow(const std::string& what) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  Status s = CheckLocked(Request(what));
  if (!s.ok()) return s;
  for (const auto& c : components_) {
    if (Request(what).Names(c.name)) return OkStatus();
  }
  return Error(ErrorCode::kNotFound, "no component or improvement " + what);
}

Status Agent::InstallBundle(const std::string& path) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  // A FIFO or a device would block the daemon (holding its lock) or never end.
  QP_ASSIGN_OR_RETURN(FileInfo info, env_->Stat(path));
  if (info.type != FileType::kRegular) {
    return Error(ErrorCode::kInvalidArgument, "bundle " + path + " is not a regular file");
  }
  QP_ASSIGN_OR_RETURN(auto bytes, ReadFileLimited(env_, path, kMaxBundleBytes));
  auto files = tuf::ParseBundle(bytes);
  if (!files.ok()) return files.error().WithContext("bundle " + path);
  tuf::BundleFetcher fetcher(std::move(files).value());
  bundle_ = &fetcher;
  Status s = CheckLocked(Request("*"));
  bundle_ = nullptr;
  return s;
}

Status Agent::FailCheck(const Error& e) {
  idle_ = {};  // the next check starts from the metadata again
  last_check_error_ = e.ToString();
  for (const auto& c : components_) {
    views_[c.name].last_error = "update check failed: " + e.ToString();
    auto st = store_->GetStatus(c.name);
    // About no fix: the installed one keeps its state, and no rollout counts it as failed.
    Report(c, st.ok() ? st->base_version : "", "", "failed",
           "update check failed: " + e.ToString());
  }
  (void)SaveState();
  return e;
}

Status Agent::CheckLocked(const Request& request) {
  WallTime now = clock_->Now();
  if (auto p = LoadPolicy(env_, config_.config_dir); p.ok()) policy_ = *p;
  // After a full check, one conditional request first: when nothing was published since,
  // that is the whole check.
  if (bundle_ == nullptr && transport_.probe != nullptr && !idle_.etag.empty()) {
    auto probe = transport_.probe->Probe(RepositoryUrl() + "/metadata/timestamp.json", idle_.etag);
    if (probe.ok() && probe->status == 304 && IdleCheck(request, now)) return OkStatus();
  }
  BeginWork();
  tuf::UpdaterConfig uc;
  uc.metadata_dir = MetadataDir();
  uc.root_max_length = config_.limits.root;
  uc.timestamp_max_length = config_.limits.timestamp;
  uc.snapshot_max_length = config_.limits.snapshot;
  uc.targets_max_length = config_.limits.targets;
  uc.target_max_length = std::max(config_.limits.rollout, config_.limits.patch);
  // Each mirror in turn until one gives metadata that verifies (what was verified from one
  // stays trusted: a mirror can hold the check up, not roll it back).
  std::optional<tuf::Updater> refreshed;
  for (std::size_t tried = 1;; ++tried) {
    const std::string base = RepositoryUrl();
    uc.metadata_url = bundle_ ? tuf::BundleFetcher::kMetadataUrl : base + "/metadata/";
    uc.target_base_url = bundle_ ? tuf::BundleFetcher::kTargetsUrl : base + "/targets/";
    refreshed.emplace(uc, env_, bundle_ ? bundle_ : transport_.metadata, clock_);
    Status s = refreshed->Refresh();
    if (s.ok()) break;
    if (bundle_ != nullptr || tried >= config_.repository_urls.size()) return FailCheck(s.error());
    spdlog::warn("agent: {}: {}", base, s.error().ToString());
    NextRepository();
  }
  tuf::Updater& updater = *refreshed;
  const std::string timestamp_url = RepositoryUrl() + "/metadata/timestamp.json";
  auto offer = ReadOffer(updater, config_.limits.rollout, &offer_);
  if (!offer.ok()) return FailCheck(offer.error());
  offer_ = std::move(offer).value();
  state_.last_check = now;
  last_check_error_.clear();
  // The outcome may be reused while the timestamp stays the same, for kMaxIdleReuse at most
  // (so that files changed behind the store's back and a new base version are seen), and
  // never past the expiry of the metadata it came from.
  // The ETag of the very timestamp.json this check verified (none from a bundle).
  idle_.etag = bundle_ == nullptr && transport_.probe != nullptr
                   ? transport_.probe->FetchedEtag(timestamp_url)
                   : "";
  idle_.fresh_until = now + kMaxIdleReuse;
  if (const tuf::Timestamp* t = updater.trusted()->timestamp())
    idle_.fresh_until = std::min(idle_.fresh_until, t->expires);
  if (const tuf::Snapshot* s = updater.trusted()->snapshot())
    idle_.fresh_until = std::min(idle_.fresh_until, s->expires);

  Status first_error = OkStatus();
  for (const auto& c : components_) {
    ComponentView& view = views_[c.name];
    auto st = store_->Reconcile(c.name);
    if (!st.ok()) {
      view.last_error = st.error().ToString();
      Report(c, "", "", "failed", view.last_error);
      if (first_error.ok()) first_error = st.error();
      continue;
    }
    ReportSuperseded(c, *st);
    if (st->modified) {
      view.last_error = st->modified_reason;
      Report(c, st->base_version, st->current.label, "failed", st->modified_reason);
      continue;
    }
    for (const auto& imp : offer_.improvements) {
      if (imp.id.component == c.name && imp.id.base == st->base_version) {
        state_.first_seen.emplace(imp.Id(), now);
      }
    }
    ApplyDecision(c, *st, DecideFor(InputFor(c, *st, now), request, state_), &updater,
                  &first_error);
    ReportInstalled(c);
  }
  QP_RETURN_IF_ERROR(SaveState());
  return first_error;
}

DecisionInput Agent::InputFor(const store::ComponentConfig& c, const store::ComponentStatus& st,
                              WallTime now) {
  DecisionInput in;
  in.component = c.name;
  in.platform = c.platform;
  in.base = st.base_version;
  in.current_label = st.current.label;
  in.improvements = &offer_.improvements;
  in.rollout = &offer_.rollout;
  in.install_id = install_id_;
  in.auto_install = EffectiveAutoInstall();
  in.defer = policy_.defer;
  in.first_seen = &state_.first_seen;
  in.now = now;
  return in;
}

bool Agent::IdleCheck(const Request& request, WallTime now) {
  if (!request.empty() || now >= idle_.fresh_until) return false;
  struct Planned {
    const store::ComponentConfig* config;
    store::ComponentStatus status;
    Decision decision;
  };
  std::vector<Planned> plan;
  for (const auto& c : components_) {
    auto st = store_->GetStatus(c.name);  // as the store last saw it: nothing hashed
    if (!st.ok() || st->modified) return false;
    if (store_->BaseVersionMayHaveChanged(c.name)) return false;  // a full update came
    Decision d = DecideFor(InputFor(c, *st, now), request, state_);
    if (d.kind == Decision::Kind::kInstall || d.kind == Decision::Kind::kRemoveRevoked) {
      return false;  // something to do: the full check verifies before acting
    }
    plan.push_back({&c, std::move(st).value(), std::move(d)});
  }
  Status ignored = OkStatus();
  for (const auto& p : plan) {
    ApplyDecision(*p.config, p.status, p.decision, nullptr, &ignored);
    ReportInstalled(*p.config);
  }
  state_.last_check = now;
  last_check_error_.clear();
  (void)SaveState();
  spdlog::debug("agent: nothing published since the last check (304)");
  return true;
}

void Agent::ApplyDecision(const store::ComponentConfig& c, const store::ComponentStatus& st,
                          const Decision& d, tuf::Updater* updater, Status* first_error) {
  ComponentView& view = views_[c.name];
  view.offered.reset();
  view.offered_state.clear();
  switch (d.kind) {
    case Decision::Kind::kRemoveRevoked: {
      Status s = store_->Remove(c.name, d.reason);
      view.last_error = s.ok() ? "" : s.error().ToString();
      Report(c, st.base_version, d.improvement->id.label, s.ok() ? "rolled_back" : "failed",
             s.ok() ? d.reason : s.error().ToString());
      if (s.ok()) state_.installed.erase(c.name);
      break;
    }
    case Decision::Kind::kInstall: {
      if (updater == nullptr) break;  // not from an idle check (IdleCheck)
      Status s = InstallImprovement(c, st, *d.improvement, *updater);
      if (!s.ok() && first_error->ok()) *first_error = s;
      break;
    }
    case Decision::Kind::kAvailable:
    case Decision::Kind::kDeferred:
    case Decision::Kind::kHalted:
      view.offered = *d.improvement;
      view.offered_state = d.kind == Decision::Kind::kAvailable  ? "available"
                           : d.kind == Decision::Kind::kDeferred ? "deferred"
                                                                 : "halted";
      view.deferred_until = d.until;
      if (d.kind != Decision::Kind::kHalted) {
        Report(c, st.base_version, d.improvement->id.label, view.offered_state, d.reason);
      }
      break;
    case Decision::Kind::kNothing:
      break;
  }
}

void Agent::ReportInstalled(const store::ComponentConfig& c) {
  // Installed is not protected while a process still runs the old code.
  auto st = store_->GetStatus(c.name);
  if (!st.ok() || st->current.label.empty()) return;
  auto stale = store_->ProcessesNeedingRestart(c.name);
  if (!stale.ok()) return;
  Report(c, st->base_version, st->current.label, stale->empty() ? "protected" : "installed", "",
         *stale);
}

Status Agent::InstallImprovement(const store::ComponentConfig& c, const store::ComponentStatus& st,
                                 const Improvement& imp, tuf::Updater& updater) {
  LogFields fields({{"QP_COMPONENT", c.name}, {"QP_IMPROVEMENT", imp.id.ToString()}});
  ComponentView& view = views_[c.name];
  Report(c, st.base_version, imp.id.label, "downloading", "");
  FixOutcome out =
      installer_.Install(*store_, c.name, st.current, imp, updater, bundle_ != nullptr);
  switch (out.kind) {
    case FixOutcome::Kind::kDownloadInterrupted:
      // Still downloading (resumed at the next check): a slow or failing server is not a
      // failed fix, and must not count towards halting its rollout.
      view.last_error = out.message;
      Report(c, st.base_version, imp.id.label, "downloading",
             out.message + " (resumed at the next check)");
      return out.status;
    case FixOutcome::Kind::kDownloadFailed:
    case FixOutcome::Kind::kInstallFailed:
      view.last_error = out.message;
      Report(c, st.base_version, imp.id.label, "failed", view.last_error);
      return out.status;
    case FixOutcome::Kind::kRolledBack:
      view.last_error = "(" + imp.id.label + ") rolled back: " + out.message;
      Report(c, st.base_version, imp.id.label, "rolled_back", out.message);
      // Not retried automatically (it would fail the same way at every check); a newer
      // improvement or a manual install is tried.
      state_.declined[c.name] = imp.id.label;
      return OkStatus();
    case FixOutcome::Kind::kInstalled:
      break;
  }
  view.last_error = out.message;  // a restart hook's error, if any
  state_.declined.erase(c.name);
  state_.installed[c.name] = InstalledFix{imp.cves, imp.urgency};
  Report(c, st.base_version, imp.id.label, out.restart_needed.empty() ? "protected" : "installed",
         "", out.restart_needed);
  return OkStatus();
}

Status Agent::RemoveNow(const std::string& component) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  LogFields fields("QP_COMPONENT", component);
  const store::ComponentConfig* c = store_->Find(component);
  if (c == nullptr) return Error(ErrorCode::kNotFound, "no component " + component);
  auto before = store_->GetStatus(component);
  BeginWork();
  QP_RETURN_IF_ERROR(store_->Remove(component, "removed on request"));
  auto after = store_->GetStatus(component);
  state_.installed.erase(component);
  if (after.ok()) {
    for (const auto& imp : offer_.improvements) {
      if (imp.id.component == component && imp.id.base == after->base_version &&
          imp.id.label == after->current.label) {
        state_.installed[component] = InstalledFix{imp.cves, imp.urgency};
      }
    }
  }
  Report(*c, after.ok() ? after->base_version : "", before.ok() ? before->current.label : "",
         "removed", "removed on request");
  // Keep it removed: not installed again automatically (a newer improvement or a manual
  // install is).
  if (before.ok()) state_.declined[component] = before->current.label;
  return SaveState();
}

Status Agent::SetAutoInstall(bool on) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (policy_.auto_install.has_value()) {
    return Error(ErrorCode::kFailedPrecondition,
                 "Automatically Install is locked by the managed policy (" +
                     JoinPath(config_.config_dir, "policy.toml") + ")");
  }
  settings_.auto_install = on;
  return SaveSettings(env_, config_.state_dir, settings_);
}

Json Agent::StatusJson() {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  AgentSummary summary;
  summary.agent_version = kAgentVersion;
  summary.inactive = inactive_;
  summary.auto_install = EffectiveAutoInstall();
  summary.auto_install_locked = policy_.auto_install.has_value();
  summary.defer = policy_.defer;
  summary.last_check = state_.last_check;
  summary.last_check_error = last_check_error_;
  summary.pending_reports = reports_ ? reports_->pending() : 0;
  summary.install_id = install_id_;
  summary.enrollment = state_.enrollment.empty() ? "not enrolled" : state_.enrollment;
  summary.enrollment_error = enrollment_error_;
  return agent::StatusJson(*store_, components_, views_, offer_.improvements, state_, summary);
}

Json Agent::HistoryJson() {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  return agent::HistoryJson(*store_, components_);
}

Result<std::vector<std::string>> Agent::Sign(const std::string& method, const std::string& url,
                                             const std::string& body) {
  QP_ASSIGN_OR_RETURN(std::string nonce, contract::NewNonce());
  QP_ASSIGN_OR_RETURN(
      auto sig, contract::SignDeviceRequest(identity_->key, install_id_, method, UrlTarget(url),
                                            body, clock_->Now(), nonce));
  return contract::SignatureHeaderLines(sig);
}

Status Agent::EnsureEnrolled() {
  if (state_.enrollment == "accepted") return OkStatus();
  auto token = ReadFileLimited(env_, config_.enrollment_token_file, kMaxTokenBytes);
  if (!token.ok()) {
    enrollment_error_ = "not enrolled: no enrollment token at " + config_.enrollment_token_file +
                        " (" + token.error().ToString() + "); the fleet operator provides it";
    return Error(ErrorCode::kFailedPrecondition, enrollment_error_);
  }
  std::string text(token->begin(), token->end());
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  const std::string url = ServerUrl() + "/v1/enroll";
  const std::string body = Json{{"token", text}, {"public_key", identity_->public_key}}.dump();
  QP_ASSIGN_OR_RETURN(auto headers, Sign("POST", url, body));
  auto sent = transport_.reports->Send(url, body, headers);
  if (!sent.ok() || sent->status >= 500) NextServer();
  if (!sent.ok()) return sent.error();
  const auto& answer = *sent;
  if (answer.status == 200 || answer.status == 202) {
    state_.enrollment = answer.status == 200 ? "accepted" : "pending";
    enrollment_error_.clear();
    QP_RETURN_IF_ERROR(SaveState());
    if (answer.status == 200) {
      spdlog::info("agent: enrolled as {}", install_id_);
      return OkStatus();
    }
    enrollment_error_ =
        "enrolled as " + install_id_ + "; waiting for the fleet operator to accept it";
    return Error(ErrorCode::kFailedPrecondition, enrollment_error_);
  }
  enrollment_error_ = "enrollment refused: HTTP " + std::to_string(answer.status) + " " +
                      answer.body.substr(0, kMaxQuotedBody);
  return Error(answer.status >= 500 ? ErrorCode::kIo : ErrorCode::kFailedPrecondition,
               enrollment_error_);
}

Status Agent::FlushReports(long* retry_after) {
  *retry_after = 0;
  if (config_.server_url.empty()) return OkStatus();
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (reports_->pending() == 0) {
    // Enrolled at once, not with the first report: the watch is signed (a slot of its own,
    // not one of its address's), and a rollout's reports do not wait behind a whole
    // fleet's enrollments.
    if (state_.enrollment.empty()) (void)EnsureEnrolled();
    return OkStatus();
  }
  QP_RETURN_IF_ERROR(EnsureEnrolled());
  BeginWork();
  const std::string url = ServerUrl() + "/v1/reports";
  auto sent = reports_->Flush(
      *transport_.reports, [&](const std::string& body) { return Sign("POST", url, body); }, url,
      install_id_, kAgentVersion, retry_after);
  if (!sent.ok()) {
    if (sent.error().code() == ErrorCode::kIo) NextServer();
    if (sent.error().code() == ErrorCode::kVerificationFailed) {
      // The service does not know this device (its database was reset, or the device was
      // never accepted there): enroll again before the next delivery.
      state_.enrollment.clear();
      (void)SaveState();
    }
    return sent.error();
  }
  return OkStatus();
}

void Agent::BeginWork() {
  if (worked_) return;
  worked_ = true;
  ResumeReadahead();
}

void Agent::Rest() {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (!worked_) return;
  worked_ = false;
  auto released = ReleaseIdleMemory();
  if (!released.ok()) {
    spdlog::debug("agent: memory not given back: {}", released.error().ToString());
    return;
  }
  spdlog::debug(
      "agent: gave back memory after work ({} read-only file mappings, {} KB mapped, {} "
      "unmapped)",
      released->mappings, released->bytes >> 10, released->unmapped);
}

std::size_t Agent::PendingReports() {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  return reports_ ? reports_->pending() : 0;
}

std::uint64_t Agent::TrustedTimestampVersion() {
  // The version this device verified last (0 before its first check): the watch asks the
  // server to answer once a newer one is published.
  auto bytes = ReadFileLimited(env_, JoinPath(MetadataDir(), "timestamp.json"),
                               contract::kMaxTimestampBytes);
  if (!bytes.ok()) return 0;
  auto peek = contract::PeekTimestamp(*bytes);
  return peek.ok() ? peek->version : 0;
}

Result<bool> Agent::Watch(const std::atomic<bool>* cancel) {
  if (config_.server_url.empty() || !config_.watch) {
    return Error(ErrorCode::kUnsupported, "no server to watch");
  }
  long timeout = static_cast<long>(config_.watch_timeout.count());
  std::string url;
  std::vector<std::string> headers;
  {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    url = ServerUrl() + "/v1/watch?timestamp=" + std::to_string(TrustedTimestampVersion()) +
          "&timeout=" + std::to_string(timeout);
    // An enrolled device signs its watch: the server gives it a slot of its own rather than
    // one of its address's (several devices may share an address).
    if (state_.enrollment == "accepted") {
      QP_ASSIGN_OR_RETURN(headers, Sign("GET", url, ""));
    }
  }
  // While the server holds the answer the agent idles: what the watch's request touched (its
  // signature, the HTTP client) is unmapped again, kept in the page cache. Under the lock,
  // as Rest(): no work maps or unmaps a file meanwhile.
  auto r = transport_.watch->Watch(url, headers, timeout + kWatchGraceSeconds, cancel, [this] {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    (void)UnmapIdlePages();
  });
  if (!r.ok() || r->status >= 500) NextServer();
  if (!r.ok()) return r.error();
  if (r->status == 204) return false;
  if (r->status == 200) return true;
  if (r->status == 401 && !headers.empty()) {
    // The service no longer knows this device: enroll again (with the next report) and
    // watch anonymously meanwhile.
    std::lock_guard<std::recursive_mutex> lock(mu_);
    state_.enrollment.clear();
    (void)SaveState();
    return Error(ErrorCode::kIo, "watch: the service does not know this device (HTTP 401)");
  }
  if (r->status == 404)
    return Error(ErrorCode::kUnsupported, "the server offers no watch endpoint");
  return Error(ErrorCode::kIo, "watch: HTTP " + std::to_string(r->status));
}

void Agent::RequestCheck() { loop_.RequestCheck(); }

void Agent::Run(const std::atomic<bool>& stop) { loop_.Run(stop); }

}  // namespace qp::agent
