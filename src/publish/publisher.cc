#include "publish/publisher.h"

#include <nlohmann/json.hpp>

#include <sstream>

#include "core/durable_file.h"
#include "core/hash.h"
#include "crypto/key_file.h"
#include "tuf/bundle.h"

namespace qp::publish {

using Json = nlohmann::json;

namespace {

constexpr const char* kImprovementsPattern = "improvements/*/*/*";

std::vector<std::uint8_t> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

// custom.quietpatch of a target, or an empty object.
const Json& Quietpatch(const tuf::TargetFile& file) {
  static const Json kEmpty = Json::object();
  if (file.custom.is_object() && file.custom.contains("quietpatch")) return file.custom.at("quietpatch");
  return kEmpty;
}


Result<crypto::SigningKey> NewKey(Env* env, const RepoPaths& paths, const std::string& file,
                                  crypto::Scheme scheme) {
  QP_ASSIGN_OR_RETURN(crypto::SigningKey key, crypto::SigningKey::Generate(scheme));
  QP_RETURN_IF_ERROR(crypto::WriteKeyFile(env, JoinPath(paths.keys_dir, file), key));
  return key;
}

// The current rollout.json content of the repository ({"improvements": {}} when absent).
Result<Json> CurrentRollout(Env* env, const RepoPaths& paths, tuf::RepositoryWriter& w) {
  if (!w.HasTargetsRole("rollout")) return Error(ErrorCode::kNotFound, "no rollout role");
  auto& targets = w.targets("rollout").targets;
  auto it = targets.find("rollout.json");
  if (it == targets.end()) return Json{{"improvements", Json::object()}};
  std::string name = w.root().consistent_snapshot
                         ? it->second.hashes.at("sha256") + ".rollout.json"
                         : std::string("rollout.json");
  auto pending = w.files().find("targets/" + name);
  std::vector<std::uint8_t> bytes;
  if (pending != w.files().end()) {
    bytes = pending->second;
  } else {
    QP_ASSIGN_OR_RETURN(bytes, ReadFileLimited(env, JoinPath(paths.repo_dir, "targets/" + name), 16 << 20));
  }
  Json j = Json::parse(bytes.begin(), bytes.end(), nullptr, false);
  if (j.is_discarded() || !j.contains("improvements")) {
    return Error(ErrorCode::kCorrupt, "published rollout.json is not valid");
  }
  return j;
}

void PutRollout(tuf::RepositoryWriter& w, const Json& rollout) {
  w.AddTarget("rollout", "rollout.json", Bytes(rollout.dump(2) + "\n"));
}

std::string TargetDir(const std::string& component, const std::string& base) {
  return "improvements/" + component + "/" + base + "/";
}

// Labels already published for component/base.
std::vector<std::string> PublishedLabels(tuf::RepositoryWriter& w, const std::string& component,
                                         const std::string& base) {
  std::vector<std::string> out;
  if (!w.HasTargetsRole("improvements")) return out;
  for (const auto& [path, file] : w.targets("improvements").targets) {
    if (path.rfind(TargetDir(component, base), 0) != 0) continue;
    std::string label = Quietpatch(file).value("label", std::string());
    if (!label.empty()) out.push_back(label);
  }
  return out;
}

std::string NextLabel(const std::vector<std::string>& used) {
  std::string best;
  for (const auto& l : used) {
    if (best.empty() || l.size() > best.size() || (l.size() == best.size() && l > best)) best = l;
  }
  if (best.empty()) return "a";
  // Increment like a base-26 number of letters: z -> aa.
  std::string next = best;
  int i = static_cast<int>(next.size()) - 1;
  while (i >= 0 && next[static_cast<std::size_t>(i)] == 'z') next[static_cast<std::size_t>(i--)] = 'a';
  if (i < 0) return "a" + next;
  next[static_cast<std::size_t>(i)]++;
  return next;
}

bool ValidId(const std::string& id, std::string* component, std::string* base, std::string* label) {
  std::size_t a = id.find('/');
  std::size_t b = id.rfind('/');
  if (a == std::string::npos || a == b) return false;
  *component = id.substr(0, a);
  *base = id.substr(a + 1, b - a - 1);
  *label = id.substr(b + 1);
  return !component->empty() && !base->empty() && !label->empty();
}

Status LoadOnline(Env* env, const RepoPaths& paths, tuf::RepositoryWriter& w, const std::string& cmd) {
  QP_RETURN_IF_ERROR(RequireKeys(env, paths, &w, "snapshot", cmd));
  return RequireKeys(env, paths, &w, "timestamp", cmd);
}

}  // namespace

std::string NextFreeLabel(Env* env, const RepoPaths& paths, const std::string& component,
                          const std::string& base) {
  if (paths.repo_dir.empty()) return "a";
  auto w = LoadRepository(env, paths, std::chrono::system_clock::now());
  if (!w.ok()) return "a";
  return NextLabel(PublishedLabels(*w, component, base));
}

Status InitRepository(Env* env, Clock* clock, const RepoPaths& paths, const InitOptions& options) {
  if (options.root_threshold < 1 || options.root_threshold > options.root_keys) {
    return Error(ErrorCode::kInvalidArgument, "root threshold must be between 1 and the number of root keys");
  }
  if (env->Stat(JoinPath(paths.repo_dir, "metadata/root.json")).ok()) {
    return Error(ErrorCode::kAlreadyExists, paths.repo_dir + " already holds a repository");
  }
  QP_RETURN_IF_ERROR(MakeDirs(env, paths.keys_dir, 0700));
  tuf::RepositoryWriter w(clock->Now());
  for (int i = 1; i <= options.root_keys; ++i) {
    QP_ASSIGN_OR_RETURN(auto key, NewKey(env, paths, "root-" + std::to_string(i) + ".key", options.scheme));
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
  PutRollout(w, Json{{"improvements", Json::object()}});
  QP_RETURN_IF_ERROR(w.PublishRoot());
  QP_RETURN_IF_ERROR(w.PublishAll());
  QP_RETURN_IF_ERROR(MakeDirs(env, JoinPath(paths.repo_dir, "metadata"), 0755));
  QP_RETURN_IF_ERROR(MakeDirs(env, JoinPath(paths.repo_dir, "targets"), 0755));
  return CommitChanges(env, paths, w, clock);
}

Status PublishImprovement(Env* env, Clock* clock, const RepoPaths& paths,
                          const std::string& improvement_dir, int percent) {
  if (percent < 0 || percent > 100) return Error(ErrorCode::kInvalidArgument, "percent must be 0..100");
  QP_ASSIGN_OR_RETURN(auto bytes, ReadFileLimited(env, JoinPath(improvement_dir, "improvement.json"), 1 << 20));
  Json imp = Json::parse(bytes.begin(), bytes.end(), nullptr, false);
  if (imp.is_discarded() || !imp.contains("patches")) {
    return Error(ErrorCode::kCorrupt, improvement_dir + "/improvement.json is not an improvement description");
  }
  QP_ASSIGN_OR_RETURN(auto w, LoadRepository(env, paths, clock->Now()));
  QP_RETURN_IF_ERROR(RequireKeys(env, paths, &w, "improvements", "publish"));
  QP_RETURN_IF_ERROR(RequireKeys(env, paths, &w, "rollout", "publish"));
  QP_RETURN_IF_ERROR(LoadOnline(env, paths, w, "publish"));
  std::string component = imp["component"], base = imp["base"], label = imp["label"];
  for (const auto& l : PublishedLabels(w, component, base)) {
    if (l == label) {
      return Error(ErrorCode::kAlreadyExists,
                   component + " " + base + " (" + label + ") is already published");
    }
  }
  for (const auto& p : imp["patches"]) {
    std::string file = p["file"];
    QP_ASSIGN_OR_RETURN(auto patch, ReadFileLimited(env, JoinPath(improvement_dir, file), 4ull << 30));
    Json custom{{"quietpatch",
                 {{"component", component},
                  {"platform", imp["platform"]},
                  {"base", base},
                  {"label", label},
                  {"from", p["from"]},
                  {"source_digest", p["source_digest"]},
                  {"result_digest", p["result_digest"]},
                  {"cves", imp["cves"]},
                  {"urgency", imp["urgency"]},
                  {"exploited", imp["exploited"]},
                  {"restart", imp["restart"]},
                  {"published", std::chrono::duration_cast<std::chrono::seconds>(
                                    clock->Now().time_since_epoch()).count()},
                  {"revoked", false}}}};
    w.AddTarget("improvements", TargetDir(component, base) + file, patch, custom);
  }
  QP_ASSIGN_OR_RETURN(Json rollout, CurrentRollout(env, paths, w));
  rollout["improvements"][component + "/" + base + "/" + label] =
      Json{{"percent", percent}, {"halted", false}, {"reason", ""}};
  PutRollout(w, rollout);
  QP_RETURN_IF_ERROR(w.PublishAll());
  return CommitChanges(env, paths, w, clock);
}

Status SetRollout(Env* env, Clock* clock, const RepoPaths& paths, const std::string& id,
                  std::optional<int> percent, std::optional<bool> halted, const std::string& reason) {
  std::string component, base, label;
  if (!ValidId(id, &component, &base, &label)) {
    return Error(ErrorCode::kInvalidArgument, "improvement id must be component/base/label");
  }
  if (percent && (*percent < 0 || *percent > 100)) {
    return Error(ErrorCode::kInvalidArgument, "percent must be 0..100");
  }
  QP_ASSIGN_OR_RETURN(auto w, LoadRepository(env, paths, clock->Now()));
  QP_RETURN_IF_ERROR(RequireKeys(env, paths, &w, "rollout", "rollout"));
  QP_RETURN_IF_ERROR(LoadOnline(env, paths, w, "rollout"));
  QP_ASSIGN_OR_RETURN(Json rollout, CurrentRollout(env, paths, w));
  if (!rollout["improvements"].contains(id)) {
    return Error(ErrorCode::kNotFound, id + " is not published");
  }
  Json& entry = rollout["improvements"][id];
  if (percent) entry["percent"] = *percent;
  if (halted) {
    entry["halted"] = *halted;
    entry["reason"] = *halted ? reason : "";
  }
  PutRollout(w, rollout);
  QP_RETURN_IF_ERROR(w.PublishAll());
  return CommitChanges(env, paths, w, clock);
}

Status Revoke(Env* env, Clock* clock, const RepoPaths& paths, const std::string& id) {
  std::string component, base, label;
  if (!ValidId(id, &component, &base, &label)) {
    return Error(ErrorCode::kInvalidArgument, "improvement id must be component/base/label");
  }
  QP_ASSIGN_OR_RETURN(auto w, LoadRepository(env, paths, clock->Now()));
  QP_RETURN_IF_ERROR(RequireKeys(env, paths, &w, "improvements", "revoke"));
  QP_RETURN_IF_ERROR(LoadOnline(env, paths, w, "revoke"));
  int revoked = 0;
  for (auto& [path, file] : w.targets("improvements").targets) {
    if (path.rfind(TargetDir(component, base), 0) != 0) continue;
    auto& q = file.custom["quietpatch"];
    if (q.value("label", std::string()) != label) continue;
    q["revoked"] = true;
    ++revoked;
  }
  if (revoked == 0) return Error(ErrorCode::kNotFound, id + " is not published");
  // Re-sign improvements: mark it dirty by re-adding nothing; PublishTargets bumps it.
  QP_RETURN_IF_ERROR(w.PublishTargets("improvements"));
  QP_RETURN_IF_ERROR(w.PublishSnapshot());
  QP_RETURN_IF_ERROR(w.PublishTimestamp());
  return CommitChanges(env, paths, w, clock);
}

Status RotateKey(Env* env, Clock* clock, const RepoPaths& paths, const std::string& role,
                 std::optional<int> threshold) {
  QP_ASSIGN_OR_RETURN(auto w, LoadRepository(env, paths, clock->Now()));
  QP_RETURN_IF_ERROR(MakeDirs(env, JoinPath(paths.keys_dir, "retired"), 0700));
  auto names = env->ListDir(paths.keys_dir);
  if (!names.ok()) return names.error();
  std::vector<std::string> old_files;
  for (const auto& n : *names) {
    if (n == role + ".key" || (n.rfind(role + "-", 0) == 0 && n.ends_with(".key"))) old_files.push_back(n);
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
  QP_RETURN_IF_ERROR(RequireKeys(env, paths, &w, "root", "rotate-key"));
  if (delegated) QP_RETURN_IF_ERROR(RequireKeys(env, paths, &w, "targets", "rotate-key"));
  QP_RETURN_IF_ERROR(LoadOnline(env, paths, w, "rotate-key"));
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
  Status committed = CommitChanges(env, paths, w, clock);
  if (!committed.ok()) {
    (void)env->Unlink(JoinPath(paths.keys_dir, new_file));
    return committed;
  }
  for (const auto& n : old_files) {
    QP_RETURN_IF_ERROR(env->Rename(JoinPath(paths.keys_dir, n), JoinPath(paths.keys_dir, "retired/" + n)));
  }
  return env->SyncDir(paths.keys_dir);
}

Status RefreshExpiring(Env* env, Clock* clock, const RepoPaths& paths, int days) {
  QP_ASSIGN_OR_RETURN(auto w, LoadRepository(env, paths, clock->Now()));
  QP_RETURN_IF_ERROR(LoadOnline(env, paths, w, "refresh"));
  WallTime horizon = clock->Now() + std::chrono::hours(24) * days;
  const auto kDay = std::chrono::hours(24);
  if (w.root().expires < horizon) {
    QP_RETURN_IF_ERROR(RequireKeys(env, paths, &w, "root", "refresh (root expires soon)"));
    w.root().expires = clock->Now() + 365 * kDay;
    QP_RETURN_IF_ERROR(w.PublishRoot());
  }
  for (const auto& role : w.TargetsRoles()) {
    if (w.targets(role).expires >= horizon) continue;
    QP_ASSIGN_OR_RETURN(int keys, LoadSigners(env, paths, role, &w));
    if (keys == 0) continue;  // offline key not here: status shows it
    w.targets(role).expires = clock->Now() + 90 * kDay;
    QP_RETURN_IF_ERROR(w.PublishTargets(role));
  }
  w.snapshot().expires = clock->Now() + 7 * kDay;
  w.timestamp().expires = clock->Now() + kDay;
  QP_RETURN_IF_ERROR(w.PublishSnapshot());
  QP_RETURN_IF_ERROR(w.PublishTimestamp());
  return CommitChanges(env, paths, w, clock);
}

Status ResignTimestamp(Env* env, Clock* clock, const RepoPaths& paths) {
  QP_ASSIGN_OR_RETURN(auto w, LoadRepository(env, paths, clock->Now()));
  QP_RETURN_IF_ERROR(RequireKeys(env, paths, &w, "timestamp", "re-signing the timestamp"));
  w.timestamp().expires = clock->Now() + std::chrono::hours(24);
  QP_RETURN_IF_ERROR(w.PublishTimestamp());
  return CommitChanges(env, paths, w, clock);
}

Result<Json> ReadRollout(Env* env, Clock* clock, const RepoPaths& paths) {
  QP_ASSIGN_OR_RETURN(auto w, LoadRepository(env, paths, clock->Now()));
  return CurrentRollout(env, paths, w);
}

Result<Json> ListImprovements(Env* env, Clock* clock, const RepoPaths& paths) {
  QP_ASSIGN_OR_RETURN(auto w, LoadRepository(env, paths, clock->Now()));
  Json out = Json::object();
  if (!w.HasTargetsRole("improvements")) return out;
  for (const auto& [path, file] : w.targets("improvements").targets) {
    const Json& q = Quietpatch(file);
    std::string id = q.value("component", std::string()) + "/" + q.value("base", std::string()) + "/" +
                     q.value("label", std::string());
    if (!out.contains(id)) {
      out[id] = q;
      out[id]["patches"] = 0;
      out[id]["bytes"] = file.length;
    }
    out[id]["patches"] = out[id]["patches"].get<int>() + 1;
    out[id]["bytes"] = std::min(out[id]["bytes"].get<std::uint64_t>(), file.length);
  }
  return out;
}

Result<std::string> DescribeRepository(Env* env, Clock* clock, const RepoPaths& paths) {
  QP_ASSIGN_OR_RETURN(auto w, LoadRepository(env, paths, clock->Now()));
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
  Json rollout = Json{{"improvements", Json::object()}};
  if (auto r = CurrentRollout(env, paths, w); r.ok()) rollout = *r;
  out << "Improvements:\n";
  std::map<std::string, std::vector<std::string>> by_id;
  if (w.HasTargetsRole("improvements")) {
    for (const auto& [path, file] : w.targets("improvements").targets) {
      const Json& q = Quietpatch(file);
      std::string id = q.value("component", std::string()) + "/" + q.value("base", std::string()) + "/" +
                       q.value("label", std::string());
      by_id[id].push_back("from " + q.value("from", std::string()) + ": " + std::to_string(file.length) +
                          " bytes" + (q.value("revoked", false) ? ", REVOKED" : ""));
    }
  }
  if (by_id.empty()) out << "  none\n";
  for (const auto& [id, patches] : by_id) {
    out << "  " << id;
    if (rollout["improvements"].contains(id)) {
      const Json& e = rollout["improvements"][id];
      out << "  rollout " << e.value("percent", 0) << "%";
      if (e.value("halted", false)) out << ", HALTED: " << e.value("reason", std::string());
    }
    out << "\n";
    for (const auto& p : patches) out << "    " << p << "\n";
  }
  return out.str();
}

Status VerifyRepository(Env* env, Clock* clock, const RepoPaths& paths) {
  QP_ASSIGN_OR_RETURN(auto first_root,
                      ReadFileLimited(env, JoinPath(paths.repo_dir, "metadata/1.root.json"), 512000));
  return VerifyAsDevice(env, paths.repo_dir, {}, first_root, clock);
}

Status MakeBundle(Env* env, const RepoPaths& paths, const std::string& id, const std::string& out_file) {
  std::string component, base, label;
  if (!ValidId(id, &component, &base, &label)) {
    return Error(ErrorCode::kInvalidArgument, "improvement id must be component/base/label");
  }
  tuf::BundleFiles files;
  QP_ASSIGN_OR_RETURN(auto names, env->ListDir(JoinPath(paths.repo_dir, "metadata")));
  for (const auto& n : names) {
    if (!n.ends_with(".json")) continue;
    QP_ASSIGN_OR_RETURN(files["metadata/" + n],
                        ReadFileLimited(env, JoinPath(paths.repo_dir, "metadata/" + n), 64 << 20));
  }
  QP_ASSIGN_OR_RETURN(auto w, LoadRepository(env, paths, std::chrono::system_clock::now()));
  int patches = 0;
  for (const auto& [path, file] : w.targets("improvements").targets) {
    const Json& q = Quietpatch(file);
    if (q.value("component", std::string()) != component || q.value("base", std::string()) != base ||
        q.value("label", std::string()) != label) {
      continue;
    }
    std::size_t slash = path.rfind('/');
    std::string stored = path.substr(0, slash + 1) + file.hashes.at("sha256") + "." + path.substr(slash + 1);
    QP_ASSIGN_OR_RETURN(files["targets/" + stored],
                        ReadFileLimited(env, JoinPath(paths.repo_dir, "targets/" + stored), 4ull << 30));
    ++patches;
  }
  if (patches == 0) return Error(ErrorCode::kNotFound, id + " is not published");
  auto rollout_info = w.targets("rollout").targets.find("rollout.json");
  if (rollout_info != w.targets("rollout").targets.end()) {
    std::string stored = rollout_info->second.hashes.at("sha256") + ".rollout.json";
    QP_ASSIGN_OR_RETURN(files["targets/" + stored],
                        ReadFileLimited(env, JoinPath(paths.repo_dir, "targets/" + stored), 16 << 20));
  }
  return WriteFileDurably(env, out_file, tuf::EncodeBundle(files), 0644);
}

}  // namespace qp::publish
