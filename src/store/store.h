// The store: the only code that touches a component's files on a device. It installs an
// improvement's patch as a persisted state machine (state written durably before each
// side effect; every step safe to repeat after a crash), health-checks it, commits or
// rolls back, removes the current improvement on request, supersedes improvements when the
// base version changes, and recovers whatever a crash interrupted.
//
// State lives under `state_dir/<component>/` (state.json with the journal, history.json,
// and for shared files the staging area). Not thread-safe: one Store per process, used from
// one thread (the agent's worker).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/env.h"
#include "store/activation.h"
#include "store/command.h"
#include "store/component_config.h"
#include "store/dpkg_database.h"
#include "store/process_maps.h"
#include "store/store_state.h"

namespace qp::store {

struct StoreOptions {
  std::string state_dir;
  Env* env = nullptr;
  Clock* clock = nullptr;
  CommandRunner run_command = RunProcess;  // health checks, base versions, restart hooks
  std::size_t history_limit = 500;
  // Extra bytes required beyond what the staged files need.
  std::uint64_t space_margin_bytes = 1 << 20;
  // How long a base-version command and a restart hook may run before their process
  // group is killed (health checks have their own, per component).
  std::chrono::seconds base_version_timeout{30};
  std::chrono::seconds restart_hook_timeout{120};
  // dpkg's database, for components that are Debian packages; while such a component's
  // files are written, the store holds dpkg's frontend lock there (as apt does), waiting at
  // most dpkg_lock_wait for a running apt or dpkg to finish.
  std::string dpkg_admin_dir;  // "": dpkg's own (/var/lib/dpkg); dpkg-query reads it
  std::chrono::milliseconds dpkg_lock_wait{5000};
  // How many bytes of the live files an install's patch reads may stay in memory from
  // their hashing to the patch, so that each is read from disk once (past it, a file is
  // read twice). 32 MiB holds a libssl3 or glibc; the memory is freed after staging.
  std::uint64_t held_source_bytes = 32u << 20;
};

struct ComponentStatus {
  std::string name;
  std::string platform;
  std::string base_version;
  TreeState current;                  // label "" = the base
  std::optional<TreeState> previous;  // what "remove" returns to
  bool modified = false;              // live files differ from what the store recorded
  std::string modified_reason;
  std::optional<Supersession> superseded;  // the improvement a full update replaced
};

struct InstallRequest {
  std::string patch_path;  // verified by the caller against signed metadata
  TreeState from;          // the state the patch applies to (label "" = base)
  TreeState to;            // the improvement: label and result digest
};

struct InstallOutcome {
  bool committed = false;    // the new tree is live and healthy
  bool rolled_back = false;  // it failed its health check and the old tree is live again
  std::string reason;        // why it rolled back
};

class Store {
 public:
  Store(StoreOptions options, std::vector<ComponentConfig> components);
  ~Store();

  const std::vector<ComponentConfig>& components() const { return components_; }
  const ComponentConfig* Find(const std::string& name) const;

  // Finishes or undoes whatever the journals say was in flight. Run at start.
  Status RecoverAll();

  // Reads the base version; when it changed, drops the old base's improvements and their
  // rollback copies and restarts from the new base (recorded as "superseded"). A Debian
  // package whose files are dpkg's again (reinstalled) is superseded the same way. Detects
  // live files modified behind the store's back. Creates the state on first sight.
  Result<ComponentStatus> Reconcile(const std::string& name);

  // Installs: checks free space (kNoSpace with the numbers), stages, verifies, activates,
  // health-checks, then commits or rolls back. An error means nothing changed (the old
  // tree is live, no staging left); a failed health check is an outcome, not an error.
  Result<InstallOutcome> Install(const std::string& name, const InstallRequest& request);

  // Makes the rollback copy live again (the previous improvement or the base) and deletes
  // the current tree. kNotFound when there is no rollback copy.
  Status Remove(const std::string& name, const std::string& reason);

  // The component's state, and whether its live files were modified behind the store's
  // back as of the last comparison (Reconcile, Verify, or the store's own install, rollback
  // or removal): no hashing, except the first call in a process. kNotFound before the first
  // Reconcile.
  Result<ComponentStatus> GetStatus(const std::string& name);
  // Whether the base version may have changed since the last reconcile, as far as that can be
  // told without hashing or running anything: a base read from a file is read again (a few
  // bytes). The other kinds say false: a literal changes only with the configuration (which
  // reloads), a package's version is read again when dpkg's and apt's hooks reload the
  // agent, and a command runs at full checks only.
  bool BaseVersionMayHaveChanged(const std::string& name);
  // Hashes the live files now and compares them with the recorded state.
  Result<ComponentStatus> Verify(const std::string& name);
  Result<std::vector<HistoryEntry>> History(const std::string& name);

  // Processes still mapping replaced files of the component ("restart needed").
  Result<std::vector<ProcessRef>> ProcessesNeedingRestart(const std::string& name,
                                                          const std::string& proc_root = "/proc");
  // Runs the component's restart hooks; the first failure is returned, all are attempted.
  Status RunRestartHooks(const std::string& name);

  // A Debian package's files whose content is not what dpkg recorded (the ones an
  // improvement changed, as dpkg --verify sees them); empty for other components.
  Result<std::vector<DpkgFileDifference>> DifferencesFromDpkg(const std::string& name);

 private:
  struct Component;
  Result<Component*> Get(const std::string& name);
  Result<std::string> ReadBaseVersion(const ComponentConfig& config);
  Status Save(Component& c);
  void Record(Component& c, const std::string& op, const std::string& from, const std::string& to,
              const std::string& result, const std::string& reason);
  // Finishes or undoes what c's journal says was in flight; takes dpkg's lock for a
  // package unless the caller holds it (fcntl locks are the process's: never nested).
  Status Recover(Component& c, bool lock_held);
  // The component restarts from `base` (live files: `digest`); its improvement, if any, is
  // recorded as superseded `by` what replaced it.
  Status Supersede(Component& c, const std::string& base, const std::string& digest,
                   const std::string& by);
  // dpkg's frontend lock when `c` is a Debian package (null otherwise). kFailedPrecondition
  // naming the holder when apt or dpkg keeps it past dpkg_lock_wait.
  Result<std::unique_ptr<FileLock>> LockPackageDatabase(const Component& c);
  Result<bool> HealthCheck(Component& c, std::string* reason);
  // Whether a package component's files all match dpkg's md5sums.
  Result<bool> FilesAreDpkgs(Component& c);
  // "" when `digest` (of the live files) is the recorded one, why not otherwise.
  std::string CompareLive(Component& c, const std::string& digest);

  StoreOptions options_;
  std::vector<ComponentConfig> components_;
  std::vector<std::unique_ptr<Component>> state_;
};

}  // namespace qp::store
