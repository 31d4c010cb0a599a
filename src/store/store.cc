#include "store/store.h"

#include <spdlog/spdlog.h>

#include <thread>

#include "core/durable_file.h"
#include "delta/qpatch_format.h"
#include "delta/tree_manifest.h"
#include "store/directory_activation.h"
#include "store/files_activation.h"
#include "store/package_component.h"

namespace qp::store {

std::unique_ptr<Activation> NewActivation(Env* env, const ComponentConfig& config,
                                          const std::string& work_dir, std::uint64_t hold_bytes) {
  if (config.kind == RootKind::kOwnedDirectory) {
    return std::make_unique<DirectoryActivation>(env, config.root, hold_bytes);
  }
  return std::make_unique<FilesActivation>(env, config.files, work_dir, hold_bytes);
}

struct Store::Component {
  const ComponentConfig* config = nullptr;
  std::string dir;
  std::unique_ptr<Activation> activation;
  std::optional<ComponentState> state;
  bool loaded = false;
  // The last comparison of the live files with state->current: "" when they matched, why
  // not otherwise; nullopt before the first one. Reconcile and Verify hash the live files;
  // the store's own operations know what they left; GetStatus only reads this.
  std::optional<std::string> modified_reason;
  std::string StatePath() const { return JoinPath(dir, "state.json"); }
  std::string HistoryPath() const { return JoinPath(dir, "history.json"); }
};

namespace {

bool IsCrash(const Error& e) { return e.code() == ErrorCode::kCrashed; }

std::string Label(const std::string& label) { return label.empty() ? "base" : "(" + label + ")"; }

std::string FirstLineTrimmed(std::string text) {
  std::size_t nl = text.find('\n');
  if (nl != std::string::npos) text.resize(nl);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\r' || text.back() == '\t')) {
    text.pop_back();
  }
  std::size_t start = text.find_first_not_of(" \t");
  return start == std::string::npos ? "" : text.substr(start);
}

}  // namespace

Store::Store(StoreOptions options, std::vector<ComponentConfig> components)
    : options_(std::move(options)), components_(std::move(components)) {
  if (options_.clock == nullptr) options_.clock = Clock::Real();
  if (options_.env == nullptr) options_.env = Env::Default();
  for (const auto& config : components_) {
    auto c = std::make_unique<Component>();
    c->config = &config;
    c->dir = JoinPath(options_.state_dir, config.name);
    c->activation = NewActivation(options_.env, config, c->dir, options_.held_source_bytes);
    state_.push_back(std::move(c));
  }
}

Store::~Store() = default;

const ComponentConfig* Store::Find(const std::string& name) const {
  for (const auto& c : components_) {
    if (c.name == name) return &c;
  }
  return nullptr;
}

Result<Store::Component*> Store::Get(const std::string& name) {
  for (auto& c : state_) {
    if (c->config->name != name) continue;
    if (!c->loaded) {
      auto exists = options_.env->Stat(c->dir);
      if (!exists.ok()) {
        QP_RETURN_IF_ERROR(MakeDirs(options_.env, c->dir, 0755));
        QP_RETURN_IF_ERROR(options_.env->SyncDir(DirName(c->dir)));
      }
      auto s = LoadState(options_.env, c->StatePath());
      if (s.ok()) {
        c->state = std::move(s).value();
      } else if (s.error().code() != ErrorCode::kNotFound) {
        return s.error();
      }
      c->loaded = true;
    }
    return c.get();
  }
  return Error(ErrorCode::kNotFound, "no component named " + name);
}

Status Store::Save(Component& c) { return SaveState(options_.env, c.StatePath(), *c.state); }

void Store::Record(Component& c, const std::string& op, const std::string& from,
                   const std::string& to, const std::string& result, const std::string& reason) {
  HistoryEntry entry{options_.clock->Now(), op, from, to, result, reason};
  Status s = AppendHistory(options_.env, c.HistoryPath(), entry, options_.history_limit);
  if (!s.ok())
    spdlog::warn("store: {}: history not written: {}", c.config->name, s.error().ToString());
  spdlog::info("store: {}: {} {} -> {}: {}{}", c.config->name, op, Label(from), Label(to), result,
               reason.empty() ? "" : " (" + reason + ")");
}

Result<std::string> Store::ReadBaseVersion(const ComponentConfig& config) {
  const BaseVersionSource& src = config.base_version;
  std::string version;
  switch (src.kind) {
    case BaseVersionSource::Kind::kLiteral:
      version = src.literal;
      break;
    case BaseVersionSource::Kind::kFile: {
      auto bytes = ReadFileLimited(options_.env, src.file, 4096);
      if (!bytes.ok()) return bytes.error().WithContext(config.name + ": base version file");
      version = FirstLineTrimmed(std::string(bytes->begin(), bytes->end()));
      break;
    }
    case BaseVersionSource::Kind::kCommand: {
      auto out = options_.run_command(src.command, options_.base_version_timeout, {});
      if (!out.ok()) return out.error().WithContext(config.name + ": base version command");
      if (!out->ok()) {
        return Error(ErrorCode::kIo, config.name + ": base version command: " + out->Describe());
      }
      version = FirstLineTrimmed(out->output);
      break;
    }
    case BaseVersionSource::Kind::kPackage: {
      auto v = InstalledPackageVersion(options_.dpkg_admin_dir, config.package);
      if (!v.ok()) return v.error().WithContext(config.name + ": base version");
      version = *v;
      break;
    }
  }
  if (version.empty()) return Error(ErrorCode::kCorrupt, config.name + ": empty base version");
  return version;
}

Status Store::Recover(Component& c, bool lock_held) {
  if (!c.state || !c.state->journal) return OkStatus();
  // A package's files are dpkg's too: finished or undone under its lock.
  std::unique_ptr<FileLock> dpkg_lock;
  if (!lock_held) {
    QP_ASSIGN_OR_RETURN(dpkg_lock, LockPackageDatabase(c));
  }
  Journal j = *c.state->journal;
  Activation& a = *c.activation;
  c.modified_reason.reset();  // what recovery leaves is compared afresh at the next look
  if (j.op == JournalOp::kInstall) {
    if (j.phase == JournalPhase::kCommitting) {
      // Committed already (the state says so); finish keeping the rollback copy.
      QP_RETURN_IF_ERROR(a.Commit(j));
      c.state->previous = j.from;
      c.state->current = j.to;
      c.state->journal.reset();
      return Save(c);
    }
    QP_RETURN_IF_ERROR(a.Undo(j));
    c.state->current = j.from;
    c.state->journal.reset();
    QP_RETURN_IF_ERROR(Save(c));
    Record(c, "recover", j.from.label, j.to.label, "rolled_back",
           "install interrupted while " + std::string(JournalPhaseName(j.phase)) +
               "; the previous tree is live");
    return OkStatus();
  }
  if (j.op == JournalOp::kRemove) {
    QP_RETURN_IF_ERROR(a.Restore(j));
    c.state->current = j.to;
    c.state->previous.reset();
    c.state->journal.reset();
    QP_RETURN_IF_ERROR(Save(c));
    Record(c, "recover", j.from.label, j.to.label, "removed", "interrupted removal finished");
    return OkStatus();
  }
  return Error(ErrorCode::kInternal, c.config->name + ": unhandled journal operation " +
                                         std::string(JournalOpName(j.op)));
}

Status Store::RecoverAll() {
  Status first = OkStatus();
  for (const auto& config : components_) {
    auto c = Get(config.name);
    Status s = c.ok() ? Recover(**c, false) : Status(c.error());
    if (!s.ok()) {
      if (IsCrash(s.error())) return s;
      if (s.error().code() == ErrorCode::kFailedPrecondition && c.ok() &&
          !(*c)->config->package.empty()) {
        // apt is running: the next reconcile finishes it, under the lock.
        spdlog::warn("store: {}: recovery waits for dpkg: {}", config.name, s.error().ToString());
        continue;
      }
      spdlog::error("store: {}: recovery failed: {}", config.name, s.error().ToString());
      if (first.ok()) first = s.error().WithContext(config.name);
    }
  }
  return first;
}

std::string Store::CompareLive(Component& c, const std::string& digest) {
  if (digest == c.state->current.digest) return "";
  if (c.state->current.digest.empty()) {
    return "the files of " + c.config->package +
           " differ from dpkg's md5sums (dpkg --verify lists them); quietpatch leaves them "
           "alone until they are dpkg's again";
  }
  return "the live files differ from " + Label(c.state->current.label) +
         " as the store left them (modified outside quietpatch)";
}

Status Store::Supersede(Component& c, const std::string& base, const std::string& digest,
                        const std::string& by) {
  QP_RETURN_IF_ERROR(c.activation->DropPrevious());
  const ComponentState old = *c.state;
  std::optional<Supersession> superseded = old.superseded;
  if (!old.current.label.empty())
    superseded = Supersession{old.base_version, old.current.label, by};
  c.state = ComponentState{base, TreeState{"", digest}, std::nullopt, std::nullopt, superseded};
  QP_RETURN_IF_ERROR(Save(c));
  Record(c, "supersede", old.current.label, "", "superseded",
         old.base_version == base ? by : "base version " + old.base_version + " -> " + base);
  return OkStatus();
}

Result<ComponentStatus> Store::Reconcile(const std::string& name) {
  QP_ASSIGN_OR_RETURN(Component * c, Get(name));
  QP_RETURN_IF_ERROR(Recover(*c, false));
  QP_ASSIGN_OR_RETURN(std::string base, ReadBaseVersion(*c->config));
  // The one hash of the live files per check.
  auto live = c->activation->LiveDigest();
  if (!live.ok()) return live.error().WithContext(name + ": reading the live files");
  std::string digest = HexEncode(*live);
  const bool package = !c->config->package.empty();
  // A package's files are taken as its base only when they are dpkg's (its md5sums, the
  // first integrity check); otherwise the recorded digest stays "" (matching nothing), and
  // the component is "modified" until they are.
  auto as_dpkg = [&]() -> Result<std::string> {
    if (!package) return digest;
    QP_ASSIGN_OR_RETURN(bool same, FilesAreDpkgs(*c));
    return same ? digest : std::string();
  };
  if (!c->state) {
    QP_ASSIGN_OR_RETURN(std::string recorded, as_dpkg());
    c->state =
        ComponentState{base, TreeState{"", recorded}, std::nullopt, std::nullopt, std::nullopt};
    QP_RETURN_IF_ERROR(Save(*c));
  } else if (c->state->base_version != base) {
    // The next full update installed the component anew: its improvements are history.
    QP_ASSIGN_OR_RETURN(std::string recorded, as_dpkg());
    QP_RETURN_IF_ERROR(Supersede(
        *c, base, recorded, package ? c->config->package + " " + base : "base version " + base));
  } else if (digest != c->state->current.digest && package) {
    // dpkg reinstalled the same version (or an older one with the same version string), or
    // files unlike dpkg's at first sight are dpkg's again: when they all match its md5sums,
    // they are the base, and an improvement is no longer claimed.
    QP_ASSIGN_OR_RETURN(bool same, FilesAreDpkgs(*c));
    if (same && !c->state->current.label.empty()) {
      QP_RETURN_IF_ERROR(
          Supersede(*c, base, digest, c->config->package + " " + base + " reinstalled by dpkg"));
    } else if (same) {
      c->state->current.digest = digest;
      QP_RETURN_IF_ERROR(Save(*c));
    }
  }
  c->modified_reason = CompareLive(*c, digest);
  return GetStatus(name);
}

Result<bool> Store::FilesAreDpkgs(Component& c) {
  QP_ASSIGN_OR_RETURN(auto differences, DifferencesFromDpkg(c.config->name));
  return differences.empty();
}

bool Store::BaseVersionMayHaveChanged(const std::string& name) {
  auto c = Get(name);
  if (!c.ok() || !(*c)->state) return true;
  if ((*c)->config->base_version.kind != BaseVersionSource::Kind::kFile) return false;
  auto base = ReadBaseVersion(*(*c)->config);
  return !base.ok() || *base != (*c)->state->base_version;
}

Result<ComponentStatus> Store::Verify(const std::string& name) {
  QP_ASSIGN_OR_RETURN(Component * c, Get(name));
  if (!c->state) return Error(ErrorCode::kNotFound, name + ": not reconciled yet");
  auto live = c->activation->LiveDigest();
  c->modified_reason = live.ok() ? CompareLive(*c, HexEncode(*live))
                                 : "cannot read the live files: " + live.error().ToString();
  return GetStatus(name);
}

Result<ComponentStatus> Store::GetStatus(const std::string& name) {
  QP_ASSIGN_OR_RETURN(Component * c, Get(name));
  if (!c->state) return Error(ErrorCode::kNotFound, name + ": not reconciled yet");
  ComponentStatus st;
  st.name = name;
  st.platform = c->config->platform;
  st.base_version = c->state->base_version;
  st.current = c->state->current;
  st.previous = c->state->previous;
  st.superseded = c->state->superseded;
  if (!c->modified_reason) return Verify(name);  // first look in this process
  st.modified = !c->modified_reason->empty();
  st.modified_reason = *c->modified_reason;
  return st;
}

Result<std::vector<HistoryEntry>> Store::History(const std::string& name) {
  QP_ASSIGN_OR_RETURN(Component * c, Get(name));
  return LoadHistory(options_.env, c->HistoryPath());
}

Result<bool> Store::HealthCheck(Component& c, std::string* reason) {
  const ComponentConfig& config = *c.config;
  if (config.health_check.empty()) return true;
  std::vector<std::string> env = {"QP_COMPONENT=" + config.name};
  if (config.kind == RootKind::kOwnedDirectory) env.push_back("QP_COMPONENT_ROOT=" + config.root);
  auto out = options_.run_command(config.health_check, config.health_timeout, env);
  if (!out.ok()) {
    *reason = "health check could not run: " + out.error().ToString();
    return false;
  }
  if (!out->ok()) {
    *reason = out->timed_out ? "health check timed out after " +
                                   std::to_string(config.health_timeout.count()) + "s"
                             : "health check failed: " + out->Describe();
    return false;
  }
  return true;
}

Result<std::unique_ptr<FileLock>> Store::LockPackageDatabase(const Component& c) {
  if (c.config->package.empty()) return std::unique_ptr<FileLock>();
  // The lock dpkg documents for frontends (apt takes it the same way).
  const std::string path = options_.dpkg_admin_dir.empty()
                               ? std::string(kDpkgFrontendLock)
                               : JoinPath(options_.dpkg_admin_dir, "lock-frontend");
  constexpr auto kRetry = std::chrono::milliseconds(100);
  for (auto waited = std::chrono::milliseconds(0);; waited += kRetry) {
    auto lock = options_.env->TryLockFile(path);
    if (lock.ok() || lock.error().code() != ErrorCode::kFailedPrecondition) return lock;
    if (waited >= options_.dpkg_lock_wait) {
      return Error(ErrorCode::kFailedPrecondition,
                   c.config->name + ": apt or dpkg is running (" + lock.error().message() +
                       "); its files are left to it, and the next check tries again");
    }
    std::this_thread::sleep_for(kRetry);
  }
}

Result<InstallOutcome> Store::Install(const std::string& name, const InstallRequest& request) {
  QP_ASSIGN_OR_RETURN(Component * c, Get(name));
  // apt and dpkg never write a package's files while the store does.
  QP_ASSIGN_OR_RETURN(auto dpkg_lock, LockPackageDatabase(*c));
  QP_RETURN_IF_ERROR(Recover(*c, true));
  if (!c->state) QP_RETURN_IF_ERROR(Reconcile(name));
  if (!c->config->package.empty()) {
    // dpkg may have run while the lock was awaited: the patch was chosen for what was
    // installed before.
    QP_ASSIGN_OR_RETURN(std::string base, ReadBaseVersion(*c->config));
    if (base != c->state->base_version) {
      QP_RETURN_IF_ERROR(Reconcile(name));
      return Error(ErrorCode::kFailedPrecondition, name + ": dpkg installed " + c->config->package +
                                                       " " + base +
                                                       " meanwhile; the next check decides anew");
    }
  }
  Activation& a = *c->activation;
  ComponentState& state = *c->state;
  if (state.current.digest.empty()) {  // a package whose files were not dpkg's
    return Error(ErrorCode::kFailedPrecondition, name + ": " + CompareLive(*c, "unknown"));
  }
  if (request.from != state.current) {
    return Error(ErrorCode::kInvalidArgument, name + " is at " + Label(state.current.label) +
                                                  ", the patch applies to " +
                                                  Label(request.from.label));
  }
  // Whether the live files are still what the store left (not modified behind its back)
  // is checked by the patch engine, which hashes them anyway before applying.

  // The patch: it must produce what the signed metadata says, from what is live.
  QP_ASSIGN_OR_RETURN(auto patch_file, options_.env->NewRandomAccessFile(request.patch_path));
  auto header = delta::DecodePatchHeader(*patch_file);
  if (!header.ok()) return header.error().WithContext("patch " + request.patch_path);
  if (header->kind != delta::PatchKind::kTree) {
    return Error(ErrorCode::kInvalidArgument,
                 "patch " + request.patch_path + " is a single-file patch, not a component's");
  }
  if (HexEncode(header->result_digest) != request.to.digest) {
    return Error(ErrorCode::kVerificationFailed,
                 "patch result digest differs from the improvement's signed digest");
  }
  if (HexEncode(header->source_digest) != state.current.digest) {
    return Error(ErrorCode::kVerificationFailed,
                 "patch does not apply to " + Label(state.current.label) + " of " + name);
  }

  // Fail early, with the numbers, when the staged files cannot fit.
  std::map<std::string, std::uint64_t> sizes;
  for (const auto& e : header->manifest) sizes[e.path] = e.size;
  std::uint64_t needed = options_.space_margin_bytes;
  for (const auto& r : header->records) {
    if (r.op == delta::RecordOp::kFull || r.op == delta::RecordOp::kDelta ||
        r.op == delta::RecordOp::kCopy || r.op == delta::RecordOp::kGzipDelta) {
      needed += sizes[r.path];  // each new file is written once, beside the live one
    }
  }
  QP_ASSIGN_OR_RETURN(std::uint64_t available, a.AvailableBytes());
  if (available < needed) {
    return Error(ErrorCode::kNoSpace, name + ": installing needs " + std::to_string(needed) +
                                          " bytes free, " + std::to_string(available) +
                                          " available");
  }

  Journal j;
  j.op = JournalOp::kInstall;
  j.phase = JournalPhase::kStaging;
  j.from = state.current;
  j.to = request.to;
  const ComponentState before = state;
  // Leftovers of an earlier attempt are removed before the journal says "staging".
  QP_RETURN_IF_ERROR(a.CleanStaging());
  state.journal = j;
  QP_RETURN_IF_ERROR(Save(*c));

  // A failure before the install is committed: undo, restore the state, say why. The
  // device is then exactly as it was.
  auto abandon = [&](const Error& e) -> Error {
    if (IsCrash(e)) return e;
    Status undo = a.Undo(j);
    if (undo.ok()) {
      state = before;
      Status saved = Save(*c);
      if (!saved.ok()) spdlog::error("store: {}: {}", name, saved.error().ToString());
    } else {
      spdlog::error("store: {}: undo failed, recovery will retry: {}", name,
                    undo.error().ToString());
    }
    Record(*c, "install", j.from.label, j.to.label, "failed", e.ToString());
    return e;
  };
  auto advance = [&](JournalPhase phase) -> Status {
    j.phase = phase;
    state.journal = j;
    return Save(*c);
  };

  if (Status s = a.Stage(*patch_file, *header, &j); !s.ok()) return abandon(s.error());
  if (Status s = advance(JournalPhase::kStaged); !s.ok()) return abandon(s.error());
  if (Status s = a.Activate(j); !s.ok()) return abandon(s.error());
  if (Status s = advance(JournalPhase::kActivated); !s.ok()) return abandon(s.error());

  std::string reason;
  QP_ASSIGN_OR_RETURN(bool healthy, HealthCheck(*c, &reason));
  if (!healthy) {
    j.reason = reason;
    if (Status s = advance(JournalPhase::kRollingBack); !s.ok()) return abandon(s.error());
    Status undo = a.Undo(j);
    if (!undo.ok()) return undo.error().WithContext(name + ": rolling back (recovery will retry)");
    state = before;
    QP_RETURN_IF_ERROR(Save(*c));
    c->modified_reason = "";  // the staged tree's checked files were swapped back
    Record(*c, "rollback", j.from.label, j.to.label, "rolled_back", reason);
    return InstallOutcome{false, true, reason};
  }

  // Committed the moment this state is durable; moving the replaced tree into the rollback
  // copy is housekeeping that recovery finishes if it is interrupted.
  state.previous = j.from;
  state.current = j.to;
  state.superseded.reset();
  if (Status s = advance(JournalPhase::kCommitting); !s.ok()) return abandon(s.error());
  c->modified_reason = "";  // staging checked every file against the manifest
  Record(*c, "install", j.from.label, j.to.label, "committed", "");
  if (Status s = a.Commit(j); !s.ok()) {
    if (IsCrash(s.error())) return s.error();
    spdlog::warn(
        "store: {}: installed; keeping the rollback copy failed, retried at next start: {}", name,
        s.error().ToString());
    return InstallOutcome{true, false, ""};
  }
  state.journal.reset();
  if (Status s = Save(*c); !s.ok()) {
    if (IsCrash(s.error())) return s.error();
    spdlog::warn("store: {}: installed; state not saved, finished at next start: {}", name,
                 s.error().ToString());
  }
  return InstallOutcome{true, false, ""};
}

Status Store::Remove(const std::string& name, const std::string& reason) {
  QP_ASSIGN_OR_RETURN(Component * c, Get(name));
  QP_ASSIGN_OR_RETURN(auto dpkg_lock, LockPackageDatabase(*c));
  QP_RETURN_IF_ERROR(Recover(*c, true));
  if (!c->state || !c->state->previous) {
    return Error(ErrorCode::kNotFound, name + ": no previous state is kept to return to");
  }
  QP_ASSIGN_OR_RETURN(bool has_copy, c->activation->HasPreviousCopy());
  if (!has_copy && c->config->kind == RootKind::kOwnedDirectory) {
    return Error(ErrorCode::kNotFound, name + ": the rollback copy is missing");
  }
  Journal j;
  j.op = JournalOp::kRemove;
  j.phase = JournalPhase::kRestoring;
  j.from = c->state->current;
  j.to = *c->state->previous;
  j.reason = reason;
  QP_RETURN_IF_ERROR(c->activation->PrepareRestore(&j));
  c->state->journal = j;
  QP_RETURN_IF_ERROR(Save(*c));
  // A failure here leaves the journal: the next recovery finishes the removal.
  QP_RETURN_IF_ERROR(c->activation->Restore(j));
  c->state->current = j.to;
  c->state->previous.reset();
  c->state->journal.reset();
  QP_RETURN_IF_ERROR(Save(*c));
  c->modified_reason = "";  // the rollback copy the store kept is live again
  Record(*c, "remove", j.from.label, j.to.label, "removed", reason);
  return OkStatus();
}

Result<std::vector<ProcessRef>> Store::ProcessesNeedingRestart(const std::string& name,
                                                               const std::string& proc_root) {
  QP_ASSIGN_OR_RETURN(Component * c, Get(name));
  return FindStaleMappings(proc_root, c->activation->MappedPathAliases());
}

Result<std::vector<DpkgFileDifference>> Store::DifferencesFromDpkg(const std::string& name) {
  QP_ASSIGN_OR_RETURN(Component * c, Get(name));
  if (c->config->package.empty()) return std::vector<DpkgFileDifference>();
  auto package = QueryDpkgPackage(options_.env, options_.dpkg_admin_dir, c->config->package);
  if (!package.ok()) return package.error().WithContext(name);
  return store::DifferencesFromDpkg(options_.env, *package);
}

Status Store::RunRestartHooks(const std::string& name) {
  QP_ASSIGN_OR_RETURN(Component * c, Get(name));
  Status first = OkStatus();
  for (const auto& hook : c->config->restart_hooks) {
    auto out = options_.run_command(hook, options_.restart_hook_timeout, {});
    if (out.ok() && out->ok()) continue;
    Error e = out.ok() ? Error(ErrorCode::kIo, "restart hook " + hook[0] + ": " + out->Describe())
                       : out.error().WithContext("restart hook " + hook[0]);
    spdlog::warn("store: {}: {}", name, e.ToString());
    if (first.ok()) first = e;
  }
  return first;
}

}  // namespace qp::store
