// What the online keys do to a repository: rollout changes (percent, halt, resume; signed
// by the rollout key), timestamp re-signing (timestamp key) and snapshot, plus reading the
// published improvements and rollout state. The server runs these with the online keys
// only; the publisher (quietpatch-repo) runs them too, and adds what needs offline keys.
// Every change is prepared in memory, verified as a device would see it, then written
// (repo_dir.h). Not thread-safe: one writer at a time per repository (the caller locks).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "contract/improvement_id.h"
#include "contract/improvement_target.h"
#include "contract/rollout.h"
#include "core/clock.h"
#include "core/env.h"
#include "online/repo_dir.h"
#include "tuf/repository.h"

namespace qp::online {

// rollout.json as `writer` holds it (its pending version first, then the published file);
// an empty rollout when none is published. kNotFound when the repository has no rollout
// role; kCorrupt when the published file is not a rollout.
Result<contract::Rollout> CurrentRollout(Env* env, const RepoPaths& paths,
                                         const tuf::RepositoryWriter& writer);
// Adds `rollout` as the rollout role's rollout.json (signed at the next PublishAll()).
void PutRollout(tuf::RepositoryWriter& writer, const contract::Rollout& rollout);

// One published improvement: the custom.quietpatch of its patches (of the first one; they
// differ only in from/source_digest), how many patches it has and the smallest one's size.
struct PublishedImprovement {
  contract::ImprovementTarget target;
  int patches = 0;
  std::uint64_t smallest_patch_bytes = 0;
};

// Every improvement the improvements role lists, by id. kCorrupt naming the target when a
// target's custom.quietpatch is malformed.
Result<std::map<std::string, PublishedImprovement>> PublishedImprovements(
    const tuf::RepositoryWriter& writer);

// The published rollout.json.
Result<contract::Rollout> ReadRollout(Env* env, Clock* clock, const RepoPaths& paths);

// Every published improvement, by id.
Result<std::map<std::string, PublishedImprovement>> ListImprovements(Env* env, Clock* clock,
                                                                     const RepoPaths& paths);

// Changes the rollout of `id` (signed by the rollout key, then snapshot and timestamp):
// a new percent (0..100), halted or resumed (the reason is kept while halted). kNotFound
// when `id` is not published; kInvalidArgument for a percent out of range;
// kVerificationFailed when a needed key is not in the keys directory.
Status SetRollout(Env* env, Clock* clock, const RepoPaths& paths, const contract::ImprovementId& id,
                  std::optional<int> percent, std::optional<bool> halted,
                  const std::string& reason);

// Re-signs the timestamp alone (new version, expiry kTimestampLifetime on) with the
// timestamp key.
inline constexpr std::chrono::hours kTimestampLifetime{24};
Status ResignTimestamp(Env* env, Clock* clock, const RepoPaths& paths);

// kVerificationFailed unless the keys directory holds the snapshot and timestamp keys
// (every change re-signs both).
Status RequireOnlineKeys(Env* env, const RepoPaths& paths, tuf::RepositoryWriter& writer,
                         const std::string& command);

}  // namespace qp::online
