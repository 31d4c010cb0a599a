#include "online/online_repository.h"

#include <algorithm>

#include "core/durable_file.h"
#include "tuf/metadata.h"

namespace qp::online {

namespace {

constexpr const char* kRolloutRole = "rollout";
constexpr const char* kRolloutFile = "rollout.json";
constexpr const char* kImprovementsRole = "improvements";

}  // namespace

Result<contract::Rollout> CurrentRollout(Env* env, const RepoPaths& paths,
                                         const tuf::RepositoryWriter& writer) {
  if (!writer.HasTargetsRole(kRolloutRole)) return Error(ErrorCode::kNotFound, "no rollout role");
  const auto& targets = writer.targets(kRolloutRole).targets;
  auto it = targets.find(kRolloutFile);
  if (it == targets.end()) return contract::Rollout{};
  auto sha = it->second.hashes.find("sha256");
  if (writer.root().consistent_snapshot && sha == it->second.hashes.end()) {
    return Error(ErrorCode::kCorrupt, "rollout.json is listed without a sha256 hash");
  }
  std::string stored = "targets/" + (writer.root().consistent_snapshot
                                         ? tuf::ConsistentTargetPath(kRolloutFile, sha->second)
                                         : std::string(kRolloutFile));
  std::vector<std::uint8_t> bytes;
  if (auto pending = writer.files().find(stored); pending != writer.files().end()) {
    bytes = pending->second;
  } else {
    QP_ASSIGN_OR_RETURN(
        bytes, ReadFileLimited(env, JoinPath(paths.repo_dir, stored), contract::kMaxRolloutBytes));
  }
  auto rollout = contract::Rollout::Parse(bytes);
  if (!rollout.ok()) return rollout.error().WithContext("published " + stored);
  return rollout;
}

void PutRollout(tuf::RepositoryWriter& writer, const contract::Rollout& rollout) {
  std::string text = rollout.Serialize();
  writer.AddTarget(kRolloutRole, kRolloutFile, std::vector<std::uint8_t>(text.begin(), text.end()));
}

Result<std::map<std::string, PublishedImprovement>> PublishedImprovements(
    const tuf::RepositoryWriter& writer) {
  std::map<std::string, PublishedImprovement> out;
  if (!writer.HasTargetsRole(kImprovementsRole)) return out;
  for (const auto& [path, file] : writer.targets(kImprovementsRole).targets) {
    QP_ASSIGN_OR_RETURN(auto target, contract::ImprovementTarget::FromCustom(file.custom, path));
    auto [it, fresh] = out.try_emplace(target.id.ToString());
    PublishedImprovement& p = it->second;
    if (fresh) {
      p.target = std::move(target);
      p.smallest_patch_bytes = file.length;
    }
    ++p.patches;
    p.smallest_patch_bytes = std::min(p.smallest_patch_bytes, file.length);
  }
  return out;
}

Result<contract::Rollout> ReadRollout(Env* env, Clock* clock, const RepoPaths& paths) {
  QP_ASSIGN_OR_RETURN(auto w, LoadRepository(env, paths, clock->Now()));
  return CurrentRollout(env, paths, w);
}

Result<std::map<std::string, PublishedImprovement>> ListImprovements(Env* env, Clock* clock,
                                                                     const RepoPaths& paths) {
  QP_ASSIGN_OR_RETURN(auto w, LoadRepository(env, paths, clock->Now()));
  return PublishedImprovements(w);
}

Status RequireOnlineKeys(Env* env, const RepoPaths& paths, tuf::RepositoryWriter& writer,
                         const std::string& command) {
  QP_RETURN_IF_ERROR(RequireKeys(env, paths, &writer, "snapshot", command));
  return RequireKeys(env, paths, &writer, "timestamp", command);
}

Status SetRollout(Env* env, Clock* clock, const RepoPaths& paths, const contract::ImprovementId& id,
                  std::optional<int> percent, std::optional<bool> halted,
                  const std::string& reason) {
  if (percent && (*percent < 0 || *percent > 100)) {
    return Error(ErrorCode::kInvalidArgument, "percent must be 0..100");
  }
  QP_ASSIGN_OR_RETURN(auto w, LoadRepository(env, paths, clock->Now()));
  QP_RETURN_IF_ERROR(RequireKeys(env, paths, &w, kRolloutRole, "rollout"));
  QP_RETURN_IF_ERROR(RequireOnlineKeys(env, paths, w, "rollout"));
  QP_ASSIGN_OR_RETURN(contract::Rollout rollout, CurrentRollout(env, paths, w));
  auto it = rollout.improvements.find(id.ToString());
  if (it == rollout.improvements.end()) {
    return Error(ErrorCode::kNotFound, id.ToString() + " is not published");
  }
  contract::RolloutEntry& entry = it->second;
  if (percent) entry.percent = *percent;
  if (halted) {
    entry.halted = *halted;
    entry.reason = *halted ? reason : "";
  }
  PutRollout(w, rollout);
  QP_RETURN_IF_ERROR(w.PublishAll());
  return CommitChanges(env, paths, w, clock);
}

Status ResignTimestamp(Env* env, Clock* clock, const RepoPaths& paths) {
  QP_ASSIGN_OR_RETURN(auto w, LoadRepository(env, paths, clock->Now()));
  QP_RETURN_IF_ERROR(RequireKeys(env, paths, &w, "timestamp", "re-signing the timestamp"));
  w.timestamp().expires = clock->Now() + kTimestampLifetime;
  QP_RETURN_IF_ERROR(w.PublishTimestamp());
  return CommitChanges(env, paths, w, clock);
}

}  // namespace qp::online
