// The publisher's commands (quietpatch-repo): create a repository and its keys, build an
// improvement's patches, publish it, control its rollout, revoke it, rotate keys, refresh
// expiring metadata, show and verify the repository, and make offline bundles. Every
// command that changes the repository prepares all new files in memory, verifies them as
// a device would, and only then writes them (see repo_dir.h).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/env.h"
#include "crypto/keys.h"
#include <nlohmann/json.hpp>

#include "publish/repo_dir.h"

namespace qp::publish {

struct InitOptions {
  int root_keys = 3;
  int root_threshold = 2;
  crypto::Scheme scheme = crypto::Scheme::kEd25519;
};

// Creates keys (each in its own 0600 file) and the first signed metadata: root, targets
// delegating improvements/*/*/* to "improvements" and rollout.json to "rollout",
// snapshot, timestamp, and an empty rollout.json. Refuses a non-empty repository.
Status InitRepository(Env* env, Clock* clock, const RepoPaths& paths, const InitOptions& options);

struct BuildSpec {
  std::string component, platform, base;
  std::string label;  // empty: the next free letter (needs repo)
  std::string base_tree;  // the component tree as the base version installed it
  std::vector<std::pair<std::string, std::string>> earlier;  // (label, tree) still installed
  std::string new_tree;
  std::vector<std::string> cves;
  std::string urgency = "high";
  bool exploited = false;
  std::vector<std::string> restart;
  std::string out_dir;  // created; receives improvement.json and the .qpatch files
  int threads = 2;
  std::function<void(const std::string&)> progress;
};

// Builds one patch from the base and one from each earlier improvement. `paths` (may have
// an empty repo_dir) is used to find the next free label.
Status BuildImprovement(Env* env, const RepoPaths& paths, BuildSpec spec);

// Publishes a built improvement (targets signed by the improvements key) with its initial
// rollout percentage (rollout.json, signed by the rollout key), then snapshot and timestamp.
Status PublishImprovement(Env* env, Clock* clock, const RepoPaths& paths,
                          const std::string& improvement_dir, int percent);

// Rollout changes, signed by the rollout key. `id` is "component/base/label".
Status SetRollout(Env* env, Clock* clock, const RepoPaths& paths, const std::string& id,
                  std::optional<int> percent, std::optional<bool> halted,
                  const std::string& reason);

// Marks every patch of the improvement revoked (signed by the offline improvements key):
// devices roll it back.
Status Revoke(Env* env, Clock* clock, const RepoPaths& paths, const std::string& id);

// A new key for `role` replaces its current one(s). Root: version N+1 signed by the old
// and the new keys (`threshold` optionally changes the root threshold). Other top-level
// roles: a new root listing the new key, and the role re-signed. Delegated roles: targets
// re-signs the delegation. The old key file moves to <keys>/retired/.
Status RotateKey(Env* env, Clock* clock, const RepoPaths& paths, const std::string& role,
                 std::optional<int> threshold);

// Re-signs, with a new version and expiry, every role expiring within `days` (for which a
// key is present), then snapshot and timestamp.
Status RefreshExpiring(Env* env, Clock* clock, const RepoPaths& paths, int days);

// Re-signs the timestamp alone (new version, expiry one day on), with the online
// timestamp key. The server does this before the timestamp expires.
Status ResignTimestamp(Env* env, Clock* clock, const RepoPaths& paths);

// The published rollout.json ({"improvements": {id: {percent, halted, reason}}}).
Result<nlohmann::json> ReadRollout(Env* env, Clock* clock, const RepoPaths& paths);

// Every published improvement: id -> custom.quietpatch of its patches (the first one),
// with "patches" (count) and "bytes" (smallest patch).
Result<nlohmann::json> ListImprovements(Env* env, Clock* clock, const RepoPaths& paths);

// A human-readable summary: improvements, rollout state, expiry dates.
Result<std::string> DescribeRepository(Env* env, Clock* clock, const RepoPaths& paths);

// The whole repository checked with the project's TUF client from 1.root.json.
Status VerifyRepository(Env* env, Clock* clock, const RepoPaths& paths);

// One file with every metadata file and the improvement's patches.
Status MakeBundle(Env* env, const RepoPaths& paths, const std::string& id,
                  const std::string& out_file);

}  // namespace qp::publish
