// The agent's configuration (agent.toml in the configuration directory), the managed
// policy an administrator may lock (policy.toml), and the person's settings (settings.json
// in the state directory).
//
//   # /etc/quietpatch/agent.toml
//   repository_url = "https://updates.example.com/repo"  # metadata/ and targets/ below it
//   server_url = "https://updates.example.com"           # optional: watch and reports (/v1)
//   # either may be an array: mirrors / instances, tried from a random one, in turn
//   trusted_root = "/etc/quietpatch/root.json"           # default: <config>/root.json
//   interval_seconds = 3600                              # polling interval
//   jitter_seconds = 300                                 # random extra delay, 0..jitter
//   max_backoff_seconds = 21600
//   watch = true                                         # long-poll the server when offered
//   watch_timeout_seconds = 300
//   ca_file = ""                                         # default: the system CA store
//   enrollment_token_file = "/etc/quietpatch/enrollment.token"  # the fleet's credential
//   # Absolute caps per download; a length the signed metadata gives only lowers them.
//   max_root_bytes = 512000        max_timestamp_bytes = 16384   max_snapshot_bytes = 2000000
//   max_targets_bytes = 5000000    max_rollout_bytes = 1048576   max_patch_bytes = 1073741824
//   admin_group = "quietpatch"                           # besides root, may change things
//   control_socket = "/run/quietpatch/control.sock"
//
//   # /etc/quietpatch/policy.toml (managed; optional)
//   auto_install = true     # forces the setting on or off and locks it
//   defer_hours = 24        # 0..72; an exploited-in-the-wild fix is not deferred
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/result.h"

namespace qp::agent {

struct DownloadLimits {
  std::uint64_t root = 512000;
  std::uint64_t timestamp = 16384;
  std::uint64_t snapshot = 2000000;
  std::uint64_t targets = 5000000;  // each targets role
  std::uint64_t rollout = 1 << 20;
  std::uint64_t patch = std::uint64_t{1} << 30;
};

struct AgentConfig {
  std::string config_dir;
  std::string state_dir;
  // Each may list several URLs (a TOML array): mirrors of one repository, instances of
  // one service. The agent starts at a random one (spreading a fleet's load) and moves to
  // the next when one fails. The first of each is also here, alone.
  std::vector<std::string> repository_urls;
  std::vector<std::string> server_urls;
  std::string repository_url;
  std::string server_url;
  std::string trusted_root;
  std::string components_dir;
  // dpkg's database for components that are Debian packages ("": dpkg's own; tests point
  // it elsewhere).
  std::string dpkg_admin_dir;
  std::chrono::seconds interval{3600};
  std::chrono::seconds jitter{300};
  std::chrono::seconds max_backoff{6 * 3600};
  bool watch = true;
  std::chrono::seconds watch_timeout{300};
  std::string ca_file;
  // The enrollment token the fleet operator provisions (default <config>/enrollment.token):
  // used once, to enroll this device's key.
  std::string enrollment_token_file;
  std::string admin_group;
  std::string control_socket = "/run/quietpatch/control.sock";
  DownloadLimits limits;
  // Bytes of the live files an install may keep in memory from their hashing to the patch
  // that reads them (store::StoreOptions::held_source_bytes); past it a file is read twice.
  std::uint64_t install_cache_bytes = 32u << 20;
};

// Reads <config_dir>/agent.toml. kInvalidArgument "<file>: <field>: <problem>".
Result<AgentConfig> LoadAgentConfig(Env* env, const std::string& config_dir,
                                    const std::string& state_dir);

struct Policy {
  bool present = false;
  std::optional<bool> auto_install;  // set: forced, and the person's setting is locked
  std::chrono::hours defer{0};
};

// Reads <config_dir>/policy.toml if it exists.
Result<Policy> LoadPolicy(Env* env, const std::string& config_dir);

struct Settings {
  bool auto_install = true;  // "Automatically Install", on by default
};

Result<Settings> LoadSettings(Env* env, const std::string& state_dir);
Status SaveSettings(Env* env, const std::string& state_dir, const Settings& settings);

}  // namespace qp::agent
