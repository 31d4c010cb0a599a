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

#include "contract/improvement_id.h"
#include "contract/improvement_target.h"
#include "core/clock.h"
#include "core/env.h"
#include "crypto/keys.h"
#include "online/online_repository.h"
#include "online/repo_dir.h"

namespace qp::publish {

// The repository and keys directories, and what the publisher shares with the server
// (online/): rollout changes, timestamp re-signing, reading what is published.
using online::RepoPaths;

// The largest patch file the publisher reads.
inline constexpr std::uint64_t kMaxPatchBytes = std::uint64_t{4} << 30;

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
  std::string label;      // empty: the next free letter (needs repo)
  std::string base_tree;  // the component tree as the base version installed it
  std::vector<std::pair<std::string, std::string>> earlier;  // (label, tree) still installed
  // Further bases the same fix is built for (N-2, ...): (version, tree). Each gets a patch
  // from its base, under its own id component/version/label.
  std::vector<std::pair<std::string, std::string>> other_bases;
  std::string new_tree;
  std::vector<std::string> cves;
  std::string urgency = "high";
  bool exploited = false;
  std::vector<std::string> restart;
  std::string out_dir;  // created; receives improvement.json and the .qpatch files
  // The repository's newest metadata, to find the next free label (needs repo_dir).
  Clock* clock = Clock::Real();
  int threads = 2;
  std::function<void(const std::string&)> progress;
};

// Builds one patch from each base and one from each earlier improvement. `paths` (may have
// an empty repo_dir) is used to find the next free label (the greatest of the bases').
Status BuildImprovement(Env* env, const RepoPaths& paths, BuildSpec spec);

// The same from Debian packages (`build --from-deb OLD.deb ... --to-deb NEW.deb`): the
// component (unless spec names one), the platform (unless named) and every base come from
// the packages' control fields, the trees from their data (deb_package.h), unpacked beside
// spec.out_dir and removed afterwards. The first of `from_debs` is spec.base; its earlier
// improvements (spec.earlier) still apply. All must be one package for one architecture.
Status BuildImprovementFromDebs(Env* env, const RepoPaths& paths, BuildSpec spec,
                                const std::vector<std::string>& from_debs,
                                const std::string& to_deb);

// What `build` writes into its directory (improvement.json), for `publish`:
//   {"patches": [{"file": name, "bytes": size, "custom": <custom.quietpatch of the target>}]}
// One schema with the signed metadata: publish adds the publication time and signs it.
struct BuiltPatch {
  std::string file;  // in the improvement's directory
  std::uint64_t bytes = 0;
  contract::ImprovementTarget target;
};
struct BuiltImprovement {
  // At least one; all of one component and label, for one or several bases.
  std::vector<BuiltPatch> patches;
  std::vector<contract::ImprovementId> Ids() const;  // each base's, in order
};
// kCorrupt naming the file when improvement.json is not that, names a file outside the
// directory, or mixes components or labels.
Result<BuiltImprovement> ReadBuiltImprovement(Env* env, const std::string& improvement_dir);

// The label after the greatest published for component/base ("a" without a repository).
// Fails when the repository cannot be read: a label is never guessed.
Result<std::string> NextFreeLabel(Env* env, Clock* clock, const RepoPaths& paths,
                                  const std::string& component, const std::string& base);

// Publishes a built improvement (targets signed by the improvements key) with its initial
// rollout percentage (rollout.json, signed by the rollout key: one entry per base), then
// snapshot and timestamp.
Status PublishImprovement(Env* env, Clock* clock, const RepoPaths& paths,
                          const std::string& improvement_dir, int percent);

// Marks every patch of the improvement revoked (signed by the offline improvements key):
// devices roll it back.
Status Revoke(Env* env, Clock* clock, const RepoPaths& paths, const contract::ImprovementId& id);

// A new key for `role` replaces its current one(s). Root: version N+1 signed by the old
// and the new keys (`threshold` optionally changes the root threshold). Other top-level
// roles: a new root listing the new key, and the role re-signed. Delegated roles: targets
// re-signs the delegation. The old key file moves to <keys>/retired/.
Status RotateKey(Env* env, Clock* clock, const RepoPaths& paths, const std::string& role,
                 std::optional<int> threshold);

// Re-signs, with a new version and expiry, every role expiring within `days` (for which a
// key is present), then snapshot and timestamp.
Status RefreshExpiring(Env* env, Clock* clock, const RepoPaths& paths, int days);

// A human-readable summary: improvements, rollout state, expiry dates.
Result<std::string> DescribeRepository(Env* env, Clock* clock, const RepoPaths& paths);

// The whole repository checked with the project's TUF client from 1.root.json.
Status VerifyRepository(Env* env, Clock* clock, const RepoPaths& paths);

// One file with every metadata file and the improvement's patches.
Status MakeBundle(Env* env, Clock* clock, const RepoPaths& paths, const contract::ImprovementId& id,
                  const std::string& out_file);

}  // namespace qp::publish
