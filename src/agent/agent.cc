#include "agent/agent.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <random>

#include "agent/check_schedule.h"
#include "contract/timestamp_peek.h"
#include "core/durable_file.h"
#include "core/hash.h"
#include "tuf/bundle.h"

namespace qp::agent {

using Json = nlohmann::json;

namespace {

// How long the loop waits before retrying a watch the server did not answer.
constexpr std::chrono::seconds kWatchRetryDelay{2};
// A watch request may take the server's timeout plus this before the agent gives up on it,
// and its answer ({"timestamp": N}) is small.
constexpr long kWatchGraceSeconds = 15;
constexpr std::size_t kMaxWatchResponseBytes = 4096;
// The longest the polling loop sleeps at a time.
constexpr std::chrono::seconds kPollWakeup{5};

// What the agent remembers between checks (first-seen times, removed improvements, ...).
constexpr const char* kAgentStateFile = "agent.json";
constexpr std::uint64_t kMaxAgentStateBytes = 16 << 20;

std::int64_t Seconds(WallTime t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

std::string RandomHex(std::size_t bytes) {
  std::random_device rd;
  std::vector<std::uint8_t> b(bytes);
  for (auto& x : b) x = static_cast<std::uint8_t>(rd());
  return HexEncode(b);
}

// The downloaded patch against the signed length and hashes (tuf's check, streamed).
Status VerifyFile(Env* env, const std::string& path, const tuf::TargetFile& file) {
  QP_ASSIGN_OR_RETURN(auto f, env->NewRandomAccessFile(path));
  return tuf::VerifyFileLengthAndHashes(*f, file.length, file.hashes, "patch");
}

// Whether `what` (a component name or an improvement id, as the person typed it) names
// `component`.
bool NamesComponent(const std::string& what, const std::string& component) {
  if (what == component) return true;
  auto id = contract::ImprovementId::Parse(what);
  return id.ok() && id->component == component;
}

std::string PatchLevel(const std::string& base, const std::string& label) {
  return label.empty() ? base : base + " (" + label + ")";
}

}  // namespace

Agent::Agent(AgentConfig config, Env* env, Clock* clock)
    : config_(std::move(config)), env_(env), clock_(clock) {
  net::HttpOptions options;
  options.ca_file = config_.ca_file;
  options.user_agent = std::string("quietpatchd/") + kAgentVersion;
  http_ = std::make_unique<net::HttpFetcher>(options);
}

Agent::~Agent() = default;

std::string Agent::MetadataDir() const { return JoinPath(config_.state_dir, "metadata"); }

Status Agent::Start() {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  QP_RETURN_IF_ERROR(MakeDirs(env_, config_.state_dir, 0755));
  QP_RETURN_IF_ERROR(MakeDirs(env_, MetadataDir(), 0755));
  QP_RETURN_IF_ERROR(MakeDirs(env_, JoinPath(config_.state_dir, "downloads"), 0700));
  // A random per-install id: never a hardware id.
  std::string id_path = JoinPath(config_.state_dir, "install_id");
  auto id = ReadFileLimited(env_, id_path, 256);
  if (id.ok()) {
    install_id_.assign(id->begin(), id->end());
    while (!install_id_.empty() && install_id_.back() == '\n') install_id_.pop_back();
  } else {
    install_id_ = RandomHex(16);
    QP_RETURN_IF_ERROR(WriteFileDurably(env_, id_path, install_id_ + "\n", 0644));
  }
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
  if (Status s = LoadAgentState(); !s.ok()) {
    // The agent state (first-seen times for deferrals, removed improvements, CVEs installed)
    // is rebuilt from scratch; the unreadable file is kept beside it, and status says so.
    first_seen_.clear();
    declined_.clear();
    views_.clear();
    last_check_.reset();
    std::string path = JoinPath(config_.state_dir, kAgentStateFile);
    Status kept = env_->Rename(path, path + ".unreadable");
    last_check_error_ = "agent state " + path + " could not be read (" + s.error().ToString() +
                        "); started afresh" +
                        (kept.ok() ? ", the old file is " + path + ".unreadable" : "");
    spdlog::error("agent: {}", last_check_error_);
  }
  QP_RETURN_IF_ERROR(Reload());
  QP_RETURN_IF_ERROR(store_->RecoverAll());
  for (const auto& c : components_) {
    auto st = store_->Reconcile(c.name);
    if (!st.ok()) {
      views_[c.name].last_error = st.error().ToString();
      spdlog::error("agent: {}: {}", c.name, st.error().ToString());
    }
  }
  spdlog::info("agent: started, {} component(s), install id {}", components_.size(), install_id_);
  return OkStatus();
}

Status Agent::Reload() {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  QP_ASSIGN_OR_RETURN(policy_, LoadPolicy(env_, config_.config_dir));
  QP_ASSIGN_OR_RETURN(auto components, store::LoadComponentConfigs(env_, config_.components_dir));
  components_ = std::move(components);
  store::StoreOptions options;
  options.state_dir = JoinPath(config_.state_dir, "store");
  options.env = env_;
  options.clock = clock_;
  QP_RETURN_IF_ERROR(MakeDirs(env_, options.state_dir, 0755));
  store_ = std::make_unique<store::Store>(options, components_);
  return OkStatus();
}

bool Agent::EffectiveAutoInstall() const {
  return policy_.auto_install.has_value() ? *policy_.auto_install : settings_.auto_install;
}

Status Agent::LoadAgentState() {
  const std::string path = JoinPath(config_.state_dir, kAgentStateFile);
  auto bytes = ReadFileLimited(env_, path, kMaxAgentStateBytes);
  if (!bytes.ok()) {
    if (bytes.error().code() == ErrorCode::kNotFound) return OkStatus();  // first start
    return bytes.error();
  }
  Json j = Json::parse(bytes->begin(), bytes->end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Error(ErrorCode::kCorrupt, path + ": not JSON");
  try {
    if (j.contains("first_seen")) {
      for (auto it = j["first_seen"].begin(); it != j["first_seen"].end(); ++it) {
        first_seen_[it.key()] = WallTime(std::chrono::seconds(it.value().get<std::int64_t>()));
      }
    }
    if (j.contains("installed")) {
      for (auto it = j["installed"].begin(); it != j["installed"].end(); ++it) {
        views_[it.key()].installed_cves = it.value().value("cves", std::vector<std::string>());
        views_[it.key()].installed_urgency = it.value().value("urgency", std::string());
      }
    }
    if (j.contains("declined")) {
      declined_ = j["declined"].get<std::map<std::string, std::string>>();
    }
    if (j.contains("last_check")) {
      last_check_ = WallTime(std::chrono::seconds(j["last_check"].get<std::int64_t>()));
    }
  } catch (const Json::exception& e) {
    return Error(ErrorCode::kCorrupt, path + ": " + e.what());
  }
  return OkStatus();
}

Status Agent::SaveAgentState() {
  Json first = Json::object();
  for (const auto& [id, t] : first_seen_) first[id] = Seconds(t);
  Json installed = Json::object();
  for (const auto& [name, v] : views_) {
    installed[name] = Json{{"cves", v.installed_cves}, {"urgency", v.installed_urgency}};
  }
  Json j{{"first_seen", first}, {"installed", installed}, {"declined", declined_}};
  if (last_check_) j["last_check"] = Seconds(*last_check_);
  return WriteFileDurably(env_, JoinPath(config_.state_dir, kAgentStateFile), j.dump(1) + "\n",
                          0644);
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
  return CheckLocked("");
}

Status Agent::InstallNow(const std::string& what) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  return CheckLocked(what);
}

Status Agent::InstallBundle(const std::string& path) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  QP_ASSIGN_OR_RETURN(auto bytes, ReadFileLimited(env_, path, std::uint64_t{2} << 30));
  auto files = tuf::ParseBundle(bytes);
  if (!files.ok()) return files.error().WithContext("bundle " + path);
  tuf::BundleFetcher fetcher(std::move(files).value());
  bundle_ = &fetcher;
  Status s = CheckLocked("*");
  bundle_ = nullptr;
  return s;
}

Status Agent::CheckLocked(const std::string& only_install) {
  WallTime now = clock_->Now();
  if (auto p = LoadPolicy(env_, config_.config_dir); p.ok()) policy_ = *p;
  tuf::UpdaterConfig uc;
  uc.metadata_dir = MetadataDir();
  uc.metadata_url =
      bundle_ ? tuf::BundleFetcher::kMetadataUrl : config_.repository_url + "/metadata/";
  uc.target_base_url =
      bundle_ ? tuf::BundleFetcher::kTargetsUrl : config_.repository_url + "/targets/";
  tuf::Updater updater(uc, env_, bundle_ ? bundle_ : http_.get(), clock_);
  auto fail_all = [&](const Error& e) -> Status {
    last_check_error_ = e.ToString();
    for (const auto& c : components_) {
      views_[c.name].last_error = "update check failed: " + e.ToString();
      auto st = store_->GetStatus(c.name);
      Report(c, st.ok() ? st->base_version : "", st.ok() ? st->current.label : "", "failed",
             "update check failed: " + e.ToString());
    }
    (void)SaveAgentState();
    return e;
  };
  if (Status s = updater.Refresh(); !s.ok()) return fail_all(s.error());
  auto targets = updater.ListRoleTargets("improvements");
  if (!targets.ok()) return fail_all(targets.error());
  improvements_.clear();
  for (const auto& t : *targets) {
    auto imp = ParseImprovement(t);
    if (imp.ok()) {
      improvements_.push_back(std::move(imp).value());
    } else {
      spdlog::warn("agent: {}", imp.error().ToString());
    }
  }
  rollout_ = contract::Rollout{};
  auto rollout_info = updater.GetTargetInfo("rollout.json");
  if (!rollout_info.ok()) return fail_all(rollout_info.error());
  if (rollout_info->has_value()) {
    auto bytes = updater.FetchTarget(**rollout_info);
    if (!bytes.ok()) return fail_all(bytes.error());
    auto parsed = contract::Rollout::Parse(*bytes);
    if (!parsed.ok()) return fail_all(parsed.error());
    rollout_ = std::move(parsed).value();
  }
  last_check_ = now;
  last_check_error_.clear();

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
    if (st->modified) {
      view.last_error = st->modified_reason;
      Report(c, st->base_version, st->current.label, "failed", st->modified_reason);
      continue;
    }
    for (const auto& imp : improvements_) {
      if (imp.id.component == c.name && imp.id.base == st->base_version &&
          !first_seen_.count(imp.Id())) {
        first_seen_[imp.Id()] = now;
      }
    }
    DecisionInput in;
    in.component = c.name;
    in.platform = c.platform;
    in.base = st->base_version;
    in.current_label = st->current.label;
    in.improvements = &improvements_;
    in.rollout = &rollout_;
    in.install_id = install_id_;
    in.auto_install = EffectiveAutoInstall();
    in.defer = policy_.defer;
    in.first_seen = &first_seen_;
    in.now = now;
    bool manual = only_install == "*" || NamesComponent(only_install, c.name);
    in.manual = manual;
    Decision d = Decide(in);
    if (!manual && d.kind == Decision::Kind::kInstall && declined_.count(c.name) != 0 &&
        declined_[c.name] == d.improvement->id.label) {
      d.kind = Decision::Kind::kAvailable;
      d.reason = "removed or rolled back here; install it again with quietpatch install";
    }
    if (manual && d.kind == Decision::Kind::kInstall && only_install != c.name &&
        only_install != "*" && only_install != d.improvement->Id()) {
      d.kind = Decision::Kind::kNothing;  // asked for another improvement than the newest
    }
    view.offered.reset();
    view.offered_state.clear();
    switch (d.kind) {
      case Decision::Kind::kRemoveRevoked: {
        Status s = store_->Remove(c.name, d.reason);
        view.last_error = s.ok() ? "" : s.error().ToString();
        Report(c, st->base_version, d.improvement->id.label, s.ok() ? "rolled_back" : "failed",
               s.ok() ? d.reason : s.error().ToString());
        if (s.ok()) view.installed_cves.clear();
        break;
      }
      case Decision::Kind::kInstall: {
        Status s = InstallImprovement(c, *st, *d.improvement, updater);
        if (!s.ok() && first_error.ok()) first_error = s.error();
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
          Report(c, st->base_version, d.improvement->id.label, view.offered_state, d.reason);
        }
        break;
      case Decision::Kind::kNothing:
        break;
    }
    // Installed is not protected while a process still runs the old code.
    auto now_status = store_->GetStatus(c.name);
    if (now_status.ok() && !now_status->current.label.empty()) {
      auto stale = store_->ProcessesNeedingRestart(c.name);
      if (stale.ok()) {
        Report(c, now_status->base_version, now_status->current.label,
               stale->empty() ? "protected" : "installed", "", *stale);
      }
    }
  }
  if (!only_install.empty() && only_install != "*") {
    bool known = false;
    for (const auto& c : components_) {
      known = known || NamesComponent(only_install, c.name);
    }
    if (!known) {
      first_error = Error(ErrorCode::kNotFound, "no component or improvement " + only_install);
    }
  }
  QP_RETURN_IF_ERROR(SaveAgentState());
  return first_error;
}

Result<std::string> Agent::DownloadPatch(const Improvement& imp, tuf::Updater& updater) {
  std::string sha = imp.file.hashes.count("sha256") ? imp.file.hashes.at("sha256") : "";
  if (sha.empty()) return Error(ErrorCode::kUnsupported, "improvement without a sha256 hash");
  std::string dir = JoinPath(config_.state_dir, "downloads");
  std::string done = JoinPath(dir, sha + ".qpatch");
  if (env_->Stat(done).ok() && VerifyFile(env_, done, imp.file).ok()) return done;
  std::string partial = JoinPath(dir, sha + ".partial");
  tuf::TargetInfo info{imp.target_path, imp.file, "improvements"};
  if (bundle_ != nullptr) {
    // From the bundle: checked against the signed length and hashes in memory.
    QP_ASSIGN_OR_RETURN(auto bytes, updater.FetchTarget(info));
    QP_RETURN_IF_ERROR(WriteFileDurably(env_, done, bytes, 0600));
    return done;
  }
  auto got = http_->DownloadToFile(env_, updater.TargetUrl(info), partial, imp.file.length);
  if (!got.ok()) return got.error();
  if (Status s = VerifyFile(env_, partial, imp.file); !s.ok()) {
    (void)env_->Unlink(partial);  // a complete file that does not verify is never resumed
    return s.error();
  }
  QP_RETURN_IF_ERROR(RenameDurably(env_, partial, done));
  return done;
}

Status Agent::InstallImprovement(const store::ComponentConfig& c, const store::ComponentStatus& st,
                                 const Improvement& imp, tuf::Updater& updater) {
  ComponentView& view = views_[c.name];
  Report(c, st.base_version, imp.id.label, "downloading", "");
  auto patch = DownloadPatch(imp, updater);
  if (!patch.ok()) {
    view.last_error = "download of (" + imp.id.label + ") failed: " + patch.error().ToString();
    Report(c, st.base_version, imp.id.label, "failed", view.last_error);
    return patch.error();
  }
  store::InstallRequest request{*patch, st.current,
                                store::TreeState{imp.id.label, imp.result_digest}};
  auto outcome = store_->Install(c.name, request);
  if (!outcome.ok()) {
    view.last_error = "install of (" + imp.id.label + ") failed: " + outcome.error().ToString();
    Report(c, st.base_version, imp.id.label, "failed", view.last_error);
    return outcome.error();
  }
  if (outcome->rolled_back) {
    view.last_error = "(" + imp.id.label + ") rolled back: " + outcome->reason;
    Report(c, st.base_version, imp.id.label, "rolled_back", outcome->reason);
    // Not retried automatically (it would fail the same way at every check); a newer
    // improvement or a manual install is tried.
    declined_[c.name] = imp.id.label;
    return OkStatus();
  }
  view.last_error.clear();
  declined_.erase(c.name);
  view.installed_cves = imp.cves;
  view.installed_urgency = imp.urgency;
  (void)env_->Unlink(*patch);
  if (Status s = store_->RunRestartHooks(c.name); !s.ok()) view.last_error = s.error().ToString();
  auto stale = store_->ProcessesNeedingRestart(c.name);
  std::vector<store::ProcessRef> restart = stale.ok() ? *stale : std::vector<store::ProcessRef>();
  Report(c, st.base_version, imp.id.label, restart.empty() ? "protected" : "installed", "",
         restart);
  return OkStatus();
}

Status Agent::RemoveNow(const std::string& component) {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  const store::ComponentConfig* c = store_->Find(component);
  if (c == nullptr) return Error(ErrorCode::kNotFound, "no component " + component);
  auto before = store_->GetStatus(component);
  QP_RETURN_IF_ERROR(store_->Remove(component, "removed on request"));
  auto after = store_->GetStatus(component);
  views_[component].installed_cves.clear();
  if (after.ok()) {
    for (const auto& imp : improvements_) {
      if (imp.id.component == component && imp.id.base == after->base_version &&
          imp.id.label == after->current.label) {
        views_[component].installed_cves = imp.cves;
      }
    }
  }
  Report(*c, after.ok() ? after->base_version : "", before.ok() ? before->current.label : "",
         "removed", "removed on request");
  // Keep it removed: not installed again automatically (a newer improvement or a manual
  // install is).
  if (before.ok()) declined_[component] = before->current.label;
  return SaveAgentState();
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
  Json components = Json::array();
  for (const auto& c : components_) {
    ComponentView& v = views_[c.name];
    Json j{{"name", c.name}, {"platform", c.platform}};
    auto st = store_->GetStatus(c.name);
    if (st.ok()) {
      j["base_version"] = st->base_version;
      j["improvement"] = st->current.label;
      j["patch_level"] = PatchLevel(st->base_version, st->current.label);
      j["modified"] = st->modified;
      j["can_remove"] = st->previous.has_value();
      Json restart = Json::array();
      if (!st->current.label.empty()) {
        auto stale = store_->ProcessesNeedingRestart(c.name);
        if (stale.ok()) {
          for (const auto& p : *stale) restart.push_back(Json{{"pid", p.pid}, {"name", p.name}});
        }
      }
      j["restart_needed"] = restart;
      bool installed = !st->current.label.empty();
      // The CVEs of the improvement installed now (from the signed metadata; what was
      // recorded at install time when the metadata could not be read).
      std::vector<std::string> cves = v.installed_cves;
      for (const auto& imp : improvements_) {
        if (imp.id.component == c.name && imp.id.base == st->base_version &&
            imp.id.label == st->current.label) {
          cves = imp.cves;
        }
      }
      if (!installed) cves.clear();
      j["cves_fixed_on_disk"] = cves;
      j["cves_mitigated"] = restart.empty() ? cves : std::vector<std::string>();
      j["protected"] = installed && restart.empty();
    } else {
      j["error"] = st.error().ToString();
    }
    if (v.offered) {
      j["available"] = Json{{"id", v.offered->Id()},
                            {"label", v.offered->id.label},
                            {"state", v.offered_state},
                            {"cves", v.offered->cves},
                            {"urgency", v.offered->urgency},
                            {"exploited", v.offered->exploited},
                            {"patch_bytes", v.offered->file.length}};
      if (v.offered_state == "deferred")
        j["available"]["deferred_until"] = Seconds(v.deferred_until);
    } else {
      j["available"] = nullptr;
    }
    j["last_error"] = v.last_error;
    components.push_back(j);
  }
  Json out{{"agent_version", kAgentVersion},
           {"auto_install", EffectiveAutoInstall()},
           {"auto_install_locked", policy_.auto_install.has_value()},
           {"defer_hours", policy_.defer.count()},
           {"last_check", last_check_ ? Json(Seconds(*last_check_)) : Json()},
           {"last_check_error", last_check_error_},
           {"pending_reports", reports_ ? reports_->pending() : 0},
           {"components", components}};
  return out;
}

Json Agent::HistoryJson() {
  std::lock_guard<std::recursive_mutex> lock(mu_);
  Json out = Json::array();
  for (const auto& c : components_) {
    auto h = store_->History(c.name);
    if (!h.ok()) continue;
    for (const auto& e : *h) {
      out.push_back(Json{{"component", c.name},
                         {"time", Seconds(e.time)},
                         {"op", e.op},
                         {"from", e.from},
                         {"to", e.to},
                         {"result", e.result},
                         {"reason", e.reason}});
    }
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const Json& a, const Json& b) { return a["time"] < b["time"]; });
  return out;
}

Status Agent::FlushReports(long* retry_after) {
  *retry_after = 0;
  if (config_.server_url.empty()) return OkStatus();
  std::lock_guard<std::recursive_mutex> lock(mu_);
  if (reports_->pending() == 0) return OkStatus();
  auto sent = reports_->Flush(*http_, config_.server_url + "/v1/reports", install_id_,
                              kAgentVersion, retry_after);
  if (!sent.ok()) return sent.error();
  return OkStatus();
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
  std::uint64_t version;
  {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    version = TrustedTimestampVersion();
  }
  net::HttpOptions options;
  options.ca_file = config_.ca_file;
  net::HttpFetcher http(options);
  long timeout = static_cast<long>(config_.watch_timeout.count());
  auto r = http.Get(config_.server_url + "/v1/watch?timestamp=" + std::to_string(version) +
                        "&timeout=" + std::to_string(timeout),
                    timeout + kWatchGraceSeconds, kMaxWatchResponseBytes, cancel);
  if (!r.ok()) return r.error();
  if (r->status == 204) return false;
  if (r->status == 200) return true;
  if (r->status == 404)
    return Error(ErrorCode::kUnsupported, "the server offers no watch endpoint");
  return Error(ErrorCode::kIo, "watch: HTTP " + std::to_string(r->status));
}

void Agent::RequestCheck() {
  {
    std::lock_guard<std::mutex> lock(wake_mu_);
    check_requested_ = true;
  }
  cancel_watch_ = true;
  wake_.notify_all();
}

void Agent::Run(const std::atomic<bool>& stop) {
  CheckSchedule schedule({config_.interval, config_.jitter, config_.max_backoff}, clock_,
                         std::random_device{}());
  bool watch_supported = config_.watch && !config_.server_url.empty();
  std::atomic<bool>& cancel = cancel_watch_;
  while (!stop) {
    {
      std::lock_guard<std::mutex> lock(wake_mu_);
      if (check_requested_) schedule.CheckNow();
      check_requested_ = false;
    }
    if (schedule.Due()) {
      Status s = Check();
      long retry_after = 0;
      Status r = FlushReports(&retry_after);
      if (!r.ok()) spdlog::warn("agent: reports not delivered yet: {}", r.error().ToString());
      if (!s.ok()) {
        spdlog::warn("agent: check failed ({} in a row): {}", schedule.failures() + 1,
                     s.error().ToString());
      }
      schedule.CheckFinished(s.ok(), std::chrono::seconds(retry_after));
    }
    if (stop) break;
    if (watch_supported) {
      cancel = false;
      auto woke = Watch(&cancel);
      if (woke.ok()) {
        if (*woke) schedule.CheckNow();
        continue;
      }
      if (woke.error().code() == ErrorCode::kUnsupported) {
        spdlog::info("agent: {}; polling every {}s", woke.error().ToString(),
                     config_.interval.count());
        watch_supported = false;
      } else if (!stop) {
        // Server unreachable: retry the watch a little later, reports too.
        long ra = 0;
        (void)FlushReports(&ra);
        std::unique_lock<std::mutex> lock(wake_mu_);
        wake_.wait_for(lock, kWatchRetryDelay, [&] { return stop.load() || check_requested_; });
      }
      continue;
    }
    std::unique_lock<std::mutex> lock(wake_mu_);
    // Woken early by a request or a stop; at most kPollWakeup, so stop is seen promptly
    // and undelivered reports are retried between checks.
    auto wait = std::min<CheckSchedule::Duration>(schedule.UntilDue(), kPollWakeup);
    if (wait.count() > 0) {
      wake_.wait_for(lock, wait, [&] { return stop.load() || check_requested_; });
    }
    lock.unlock();
    long ra = 0;
    if (reports_ && reports_->pending() > 0) (void)FlushReports(&ra);
  }
}

}  // namespace qp::agent
