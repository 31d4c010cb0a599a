#include "publish/publisher.h"

#include <nlohmann/json.hpp>

#include <sstream>

#include "core/durable_file.h"
#include "core/hash.h"
#include "crypto/key_file.h"
#include "tuf/bundle.h"
#include "tuf/metadata.h"

namespace qp::publish {

using Json = nlohmann::json;

namespace {

constexpr const char* kImprovementsPattern = "improvements/*/*/*";

Result<crypto::SigningKey> NewKey(Env* env, const RepoPaths& paths, const std::string& file,
                                  crypto::Scheme scheme) {
  QP_ASSIGN_OR_RETURN(crypto::SigningKey key, crypto::SigningKey::Generate(scheme));
  QP_RETURN_IF_ERROR(crypto::WriteKeyFile(env, JoinPath(paths.keys_dir, file), key));
  return key;
}

// Labels already published for component/base.
Result<std::vector<std::string>> PublishedLabels(const tuf::RepositoryWriter& w,
                                                 const std::string& component,
                                                 const std::string& base) {
  QP_ASSIGN_OR_RETURN(auto published, online::PublishedImprovements(w));
  std::vector<std::string> out;
  for (const auto& [id, p] : published) {
    if (p.target.id.component == component && p.target.id.base == base) {
      out.push_back(p.target.id.label);
    }
  }
  return out;
}

}  // namespace

Result<std::string> NextFreeLabel(Env* env, Clock* clock, const RepoPaths& paths,
                                  const std::string& component, const std::string& base) {
  if (paths.repo_dir.empty()) return std::string("a");
  QP_ASSIGN_OR_RETURN(auto w, online::LoadRepository(env, paths, clock->Now()));
  QP_ASSIGN_OR_RETURN(auto used, PublishedLabels(w, component, base));
  return contract::NextLabel(used);
}

Status InitRepository(Env* env, Clock* clock, const RepoPaths& paths, const InitOptions& options) {
  if (options.root_threshold < 1 || options.root_threshold > options.root_keys) {
    return Error(ErrorCode::kInvalidArgument,
                 "root threshold must be between 1 and the number of root keys");
  }
  if (env->Stat(JoinPath(paths.repo_dir, "metadata/root.json")).ok()) {
    return Error(ErrorCode::kAlreadyExists, paths.repo_dir + " already holds a repository");
  }
  QP_RETURN_IF_ERROR(MakeDirs(env, paths.keys_dir, 0700));
  tuf::RepositoryWriter w(clock->Now());
  for (int i = 1; i <= options.root_keys; ++i) {
    QP_ASSIGN_OR_RETURN(auto key,
                        NewKey(env, paths, "root-" + std::to_string(i) + ".key", options.scheme));
    w.AddRootRoleKey("root", key.Public());
    w.AddSigner("root", std::make_shared<const crypto::SigningKey>(std::move(key)));
  }
  w.root().roles["root"].threshold = static_cast<std::uint32_t>(options.root_threshold);
  for (const char* role : {"targets", "snapshot", "timestamp"}) {
    QP_ASSIGN_OR_RETURN(auto key, NewKey(env, paths, std::string(role) + ".key", options.scheme));
    w.AddRootRoleKey(role, key.Public());
    w.AddSigner(role, std::make_shared<const crypto::SigningKey>(std::move(key)));
  }
  for (const char* role : {"improvements", "rollout"}) {
    tuf::DelegatedRole d;
    d.name = role;
    d.terminating = true;
    d.paths = std::vector<std::string>{std::string(role) == "improvements" ? kImprovementsPattern
                                                                           : "rollout.json"};
    w.AddDelegation("targets", d);
    QP_ASSIGN_OR_RETURN(auto key, NewKey(env, paths, std::string(role) + ".key", options.scheme));
    w.AddDelegatedKey("targets", role, key.Public());
    w.AddSigner(role, std::make_shared<const crypto::SigningKey>(std::move(key)));
  }
  online::PutRollout(w, contract::Rollout{});
  QP_RETURN_IF_ERROR(w.PublishRoot());
  QP_RETURN_IF_ERROR(w.PublishAll());
  QP_RETURN_IF_ERROR(MakeDirs(env, JoinPath(paths.repo_dir, "metadata"), 0755));
  QP_RETURN_IF_ERROR(MakeDirs(env, JoinPath(paths.repo_dir, "targets"), 0755));
  return online::CommitChanges(env, paths, w, clock);
}

Status PublishImprovement(Env* env, Clock* clock, const RepoPaths& paths,
                          const std::string& improvement_dir, int percent) {
  if (percent < 0 || percent > 100) {
    return Error(ErrorCode::kInvalidArgument, "percent must be 0..100");
  }
  QP_ASSIGN_OR_RETURN(BuiltImprovement built, ReadBuiltImprovement(env, improvement_dir));
  const std::vector<contract::ImprovementId> ids = built.Ids();
  QP_ASSIGN_OR_RETURN(auto w, online::LoadRepository(env, paths, clock->Now()));
  QP_RETURN_IF_ERROR(online::RequireKeys(env, paths, &w, "improvements", "publish"));
  QP_RETURN_IF_ERROR(online::RequireKeys(env, paths, &w, "rollout", "publish"));
  QP_RETURN_IF_ERROR(online::RequireOnlineKeys(env, paths, w, "publish"));
  for (const auto& id : ids) {
    QP_ASSIGN_OR_RETURN(auto labels, PublishedLabels(w, id.component, id.base));
    for (const auto& l : labels) {
      if (l == id.label) {
        return Error(ErrorCode::kAlreadyExists,
                     id.component + " " + id.base + " (" + id.label + ") is already published");
      }
    }
  }
  const std::int64_t published =
      std::chrono::duration_cast<std::chrono::seconds>(clock->Now().time_since_epoch()).count();
  for (const BuiltPatch& p : built.patches) {
    QP_ASSIGN_OR_RETURN(auto patch,
                        ReadFileLimited(env, JoinPath(improvement_dir, p.file), kMaxPatchBytes));
    contract::ImprovementTarget target = p.target;
    target.published = published;
    target.revoked = false;
    w.AddTarget("improvements", target.id.TargetDir() + p.file, patch, target.ToCustom());
  }
  QP_ASSIGN_OR_RETURN(contract::Rollout rollout, online::CurrentRollout(env, paths, w));
  for (const auto& id : ids) {
    rollout.improvements[id.ToString()] = contract::RolloutEntry{percent, false, ""};
  }
  online::PutRollout(w, rollout);
  QP_RETURN_IF_ERROR(w.PublishAll());
  return online::CommitChanges(env, paths, w, clock);
}

Status Revoke(Env* env, Clock* clock, const RepoPaths& paths, const contract::ImprovementId& id) {
  QP_ASSIGN_OR_RETURN(auto w, online::LoadRepository(env, paths, clock->Now()));
  QP_RETURN_IF_ERROR(online::RequireKeys(env, paths, &w, "improvements", "revoke"));
  QP_RETURN_IF_ERROR(online::RequireOnlineKeys(env, paths, w, "revoke"));
  int revoked = 0;
  for (auto& [path, file] : w.targets("improvements").targets) {
    QP_ASSIGN_OR_RETURN(auto target, contract::ImprovementTarget::FromCustom(file.custom, path));
    if (target.id != id) continue;
    target.revoked = true;
    file.custom = target.ToCustom();
    ++revoked;
  }
  if (revoked == 0) return Error(ErrorCode::kNotFound, id.ToString() + " is not published");
  // Re-sign improvements: mark it dirty by re-adding nothing; PublishTargets bumps it.
  QP_RETURN_IF_ERROR(w.PublishTargets("improvements"));
  QP_RETURN_IF_ERROR(w.PublishSnapshot());
  QP_RETURN_IF_ERROR(w.PublishTimestamp());
  return online::CommitChanges(env, paths, w, clock);
}

Status RotateKey(Env* env, Clock* clock, const RepoPaths& paths, const std::string& role,
                 std::optional<int> threshold) {
  QP_ASSIGN_OR_RETURN(auto w, online::LoadRepository(env, paths, clock->Now()));
  QP_RETURN_IF_ERROR(MakeDirs(env, JoinPath(paths.keys_dir, "retired"), 0700));
  auto names = env->ListDir(paths.keys_dir);
  if (!names.ok()) return names.error();
  std::vector<std::string> old_files;
  for (const auto& n : *names) {
    if (n == role + ".key" || (n.rfind(role + "-", 0) == 0 && n.ends_with(".key")))
      old_files.push_back(n);
  }
  int next = 1;
  for (const auto& n : old_files) {
    if (n.rfind(role + "-", 0) == 0) {
      try {
        next = std::max(next, std::stoi(n.substr(role.size() + 1)) + 1);
      } catch (...) {
      }
    } else {
      next = std::max(next, 2);
    }
  }
  std::string new_file = role + "-" + std::to_string(next) + ".key";
  bool top_level = w.root().roles.count(role) != 0;
  bool delegated = !top_level && w.HasTargetsRole(role);
  if (!top_level && !delegated) return Error(ErrorCode::kNotFound, "no role " + role);

  // Old root keys sign the new root (and stay signers only for that).
  QP_RETURN_IF_ERROR(online::RequireKeys(env, paths, &w, "root", "rotate-key"));
  if (delegated) QP_RETURN_IF_ERROR(online::RequireKeys(env, paths, &w, "targets", "rotate-key"));
  QP_RETURN_IF_ERROR(online::RequireOnlineKeys(env, paths, w, "rotate-key"));
  crypto::Scheme scheme = crypto::Scheme::kEd25519;
  QP_ASSIGN_OR_RETURN(auto key, crypto::SigningKey::Generate(scheme));
  auto shared = std::make_shared<const crypto::SigningKey>(std::move(key));
  if (top_level) {
    std::vector<std::string> old_ids = w.root().roles[role].keyids;
    if (role == "root") {
      // Replace one root key (the first), keep the others; the threshold may change.
      std::string retire = old_ids.front();
      w.RemoveRootRoleKey("root", retire);
      w.AddRootRoleKey("root", shared->Public());
      if (threshold) w.root().roles["root"].threshold = static_cast<std::uint32_t>(*threshold);
      w.AddSigner("root", shared);
      QP_RETURN_IF_ERROR(w.PublishRoot());  // signed by old keys (incl. the retired one) and new
      // Only the file of the replaced key is retired.
      for (const auto& n : old_files) {
        auto k = crypto::ReadKeyFile(env, JoinPath(paths.keys_dir, n));
        if (k.ok() && tuf::KeyIdOf(k->Public()) == retire) old_files = {n};
      }
    } else {
      for (const auto& id : old_ids) {
        w.RemoveRootRoleKey(role, id);
        w.RemoveSigner(role, id);
      }
      w.AddRootRoleKey(role, shared->Public());
      w.AddSigner(role, shared);
      if (threshold) w.root().roles[role].threshold = static_cast<std::uint32_t>(*threshold);
      QP_RETURN_IF_ERROR(w.PublishRoot());
      if (role == "targets") QP_RETURN_IF_ERROR(w.PublishTargets("targets"));
    }
  } else {
    auto& d = *w.targets("targets").delegations;
    for (auto& r : d.roles) {
      if (r.name != role) continue;
      for (const auto& id : r.keyids) w.RemoveSigner(role, id);
      r.keyids.clear();
    }
    w.AddDelegatedKey("targets", role, shared->Public());
    w.AddSigner(role, shared);
    QP_RETURN_IF_ERROR(w.PublishTargets("targets"));
    QP_RETURN_IF_ERROR(w.PublishTargets(role));
  }
  QP_RETURN_IF_ERROR(w.PublishSnapshot());
  QP_RETURN_IF_ERROR(w.PublishTimestamp());
  // The new key file is written before the metadata that names it; the old one is retired
  // only after the metadata is committed.
  QP_RETURN_IF_ERROR(crypto::WriteKeyFile(env, JoinPath(paths.keys_dir, new_file), *shared));
  Status committed = online::CommitChanges(env, paths, w, clock);
  if (!committed.ok()) {
    (void)env->Unlink(JoinPath(paths.keys_dir, new_file));
    return committed;
  }
  for (const auto& n : old_files) {
    QP_RETURN_IF_ERROR(
        env->Rename(JoinPath(paths.keys_dir, n), JoinPath(paths.keys_dir, "retired/" + n)));
  }
  return env->SyncDir(paths.keys_dir);
}

Status RefreshExpiring(Env* env, Clock* clock, const RepoPaths& paths, int days) {
  QP_ASSIGN_OR_RETURN(auto w, online::LoadRepository(env, paths, clock->Now()));
  QP_RETURN_IF_ERROR(online::RequireOnlineKeys(env, paths, w, "refresh"));
  WallTime horizon = clock->Now() + std::chrono::hours(24) * days;
  const auto kDay = std::chrono::hours(24);
  if (w.root().expires < horizon) {
    QP_RETURN_IF_ERROR(online::RequireKeys(env, paths, &w, "root", "refresh (root expires soon)"));
    w.root().expires = clock->Now() + 365 * kDay;
    QP_RETURN_IF_ERROR(w.PublishRoot());
  }
  for (const auto& role : w.TargetsRoles()) {
    if (w.targets(role).expires >= horizon) continue;
    QP_ASSIGN_OR_RETURN(int keys, online::LoadSigners(env, paths, role, &w));
    if (keys == 0) continue;  // offline key not here: status shows it
    w.targets(role).expires = clock->Now() + 90 * kDay;
    QP_RETURN_IF_ERROR(w.PublishTargets(role));
  }
  w.snapshot().expires = clock->Now() + 7 * kDay;
  w.timestamp().expires = clock->Now() + kDay;
  QP_RETURN_IF_ERROR(w.PublishSnapshot());
  QP_RETURN_IF_ERROR(w.PublishTimestamp());
  return online::CommitChanges(env, paths, w, clock);
}

Result<std::string> DescribeRepository(Env* env, Clock* clock, const RepoPaths& paths) {
  QP_ASSIGN_OR_RETURN(auto w, online::LoadRepository(env, paths, clock->Now()));
  std::ostringstream out;
  auto line = [&](const std::string& role, const tuf::Common& c) {
    out << "  " << role << ": version " << c.version << ", expires " << tuf::FormatExpiry(c.expires)
        << (c.expires < clock->Now() ? "  EXPIRED" : "") << "\n";
  };
  out << "Roles:\n";
  line("root", w.root());
  for (const auto& role : w.TargetsRoles()) line(role, w.targets(role));
  line("snapshot", w.snapshot());
  line("timestamp", w.timestamp());
  QP_ASSIGN_OR_RETURN(contract::Rollout rollout, online::CurrentRollout(env, paths, w));
  out << "Improvements:\n";
  std::map<std::string, std::vector<std::string>> by_id;
  if (w.HasTargetsRole("improvements")) {
    for (const auto& [path, file] : w.targets("improvements").targets) {
      QP_ASSIGN_OR_RETURN(auto t, contract::ImprovementTarget::FromCustom(file.custom, path));
      by_id[t.id.ToString()].push_back("from " + t.from + ": " + std::to_string(file.length) +
                                       " bytes" + (t.revoked ? ", REVOKED" : ""));
    }
  }
  if (by_id.empty()) out << "  none\n";
  for (const auto& [id, patches] : by_id) {
    out << "  " << id;
    if (const contract::RolloutEntry* e = rollout.Find(id)) {
      out << "  rollout " << e->percent << "%";
      if (e->halted) out << ", HALTED: " << e->reason;
    }
    out << "\n";
    for (const auto& p : patches) out << "    " << p << "\n";
  }
  return out.str();
}

Status VerifyRepository(Env* env, Clock* clock, const RepoPaths& paths) {
  QP_ASSIGN_OR_RETURN(
      auto first_root,
      ReadFileLimited(env, JoinPath(paths.repo_dir, "metadata/1.root.json"), tuf::kMaxRootBytes));
  return online::VerifyAsDevice(env, paths.repo_dir, {}, first_root, clock);
}

Status MakeBundle(Env* env, Clock* clock, const RepoPaths& paths, const contract::ImprovementId& id,
                  const std::string& out_file) {
  tuf::BundleFiles files;
  QP_ASSIGN_OR_RETURN(auto names, env->ListDir(JoinPath(paths.repo_dir, "metadata")));
  for (const auto& n : names) {
    if (!n.ends_with(".json")) continue;
    QP_ASSIGN_OR_RETURN(
        files["metadata/" + n],
        ReadFileLimited(env, JoinPath(paths.repo_dir, "metadata/" + n), online::kMaxMetadataBytes));
  }
  QP_ASSIGN_OR_RETURN(auto w, online::LoadRepository(env, paths, clock->Now()));
  int patches = 0;
  for (const auto& [path, file] : w.targets("improvements").targets) {
    QP_ASSIGN_OR_RETURN(auto target, contract::ImprovementTarget::FromCustom(file.custom, path));
    if (target.id != id) continue;
    std::string stored = tuf::ConsistentTargetPath(path, file.hashes.at("sha256"));
    QP_ASSIGN_OR_RETURN(
        files["targets/" + stored],
        ReadFileLimited(env, JoinPath(paths.repo_dir, "targets/" + stored), kMaxPatchBytes));
    ++patches;
  }
  if (patches == 0) return Error(ErrorCode::kNotFound, id.ToString() + " is not published");
  auto rollout_info = w.targets("rollout").targets.find("rollout.json");
  if (rollout_info != w.targets("rollout").targets.end()) {
    std::string stored =
        tuf::ConsistentTargetPath("rollout.json", rollout_info->second.hashes.at("sha256"));
    QP_ASSIGN_OR_RETURN(files["targets/" + stored],
                        ReadFileLimited(env, JoinPath(paths.repo_dir, "targets/" + stored),
                                        contract::kMaxRolloutBytes));
  }
  return WriteFileDurably(env, out_file, tuf::EncodeBundle(files), 0644);
}

}  // namespace qp::publish
