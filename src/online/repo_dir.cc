#include "online/repo_dir.h"

#include <algorithm>

#include "core/durable_file.h"
#include "crypto/key_file.h"

namespace qp::online {

Result<std::vector<std::uint8_t>> RepoDirFetcher::Fetch(const std::string& url,
                                                        std::uint64_t max_length) {
  static constexpr std::string_view kBase = "repo:/";
  if (url.rfind(kBase, 0) != 0) return Error(ErrorCode::kNotFound, url);
  std::string rel = url.substr(kBase.size());
  if (rel.find("..") != std::string::npos) return Error(ErrorCode::kNotFound, url);
  if (pending_ != nullptr) {
    auto it = pending_->find(rel);
    if (it != pending_->end()) {
      if (it->second.size() > max_length) return Error(ErrorCode::kTooLarge, url);
      return it->second;
    }
  }
  auto bytes = ReadFileLimited(env_, JoinPath(repo_dir_, rel), max_length);
  if (!bytes.ok() && bytes.error().code() == ErrorCode::kTooLarge) return bytes.error();
  return bytes;
}

Result<tuf::RepositoryWriter> LoadRepository(Env* env, const RepoPaths& paths, WallTime now) {
  std::string metadata = JoinPath(paths.repo_dir, "metadata");
  auto w = tuf::RepositoryWriter::Load(now, [&](const std::string& name) {
    return ReadFileLimited(env, JoinPath(metadata, name), kMaxMetadataBytes);
  });
  if (!w.ok()) return w.error().WithContext("repository " + paths.repo_dir);
  return w;
}

Result<int> LoadSigners(Env* env, const RepoPaths& paths, const std::string& role,
                        tuf::RepositoryWriter* writer) {
  auto names = env->ListDir(paths.keys_dir);
  if (!names.ok()) return names.error().WithContext("keys directory");
  int found = 0;
  for (const auto& name : *names) {
    if (name != role + ".key" && !(name.rfind(role + "-", 0) == 0 && name.ends_with(".key"))) {
      continue;
    }
    QP_ASSIGN_OR_RETURN(crypto::SigningKey key,
                        crypto::ReadKeyFile(env, JoinPath(paths.keys_dir, name)));
    writer->AddSigner(role, std::make_shared<const crypto::SigningKey>(std::move(key)));
    ++found;
  }
  return found;
}

Status RequireKeys(Env* env, const RepoPaths& paths, tuf::RepositoryWriter* writer,
                   const std::string& role, const std::string& command) {
  QP_ASSIGN_OR_RETURN(int found, LoadSigners(env, paths, role, writer));
  (void)found;
  // Which keyids count for the role, and how many of our signers are among them.
  std::vector<std::string> listed;
  std::uint32_t threshold = 1;
  if (writer->root().roles.count(role) != 0) {
    listed = writer->root().roles.at(role).keyids;
    threshold = writer->root().roles.at(role).threshold;
  } else {
    for (const auto& name : writer->TargetsRoles()) {
      const auto& d = writer->targets(name).delegations;
      if (!d) continue;
      for (const auto& r : d->roles) {
        if (r.name == role) {
          listed = r.keyids;
          threshold = r.threshold;
        }
      }
    }
  }
  std::uint32_t have = 0;
  for (const auto& id : listed) have += writer->HasSigner(role, id) ? 1 : 0;
  if (have < threshold) {
    return Error(ErrorCode::kVerificationFailed,
                 command + " needs " + std::to_string(threshold) + " " + role + " key(s), " +
                     std::to_string(have) + " found in " + paths.keys_dir + " (" + role +
                     ".key or " + role + "-N.key)");
  }
  return OkStatus();
}

Status VerifyAsDevice(Env* env, const std::string& repo_dir,
                      const std::map<std::string, std::vector<std::uint8_t>>& pending,
                      const std::vector<std::uint8_t>& trusted_root, Clock* clock,
                      std::vector<tuf::TargetInfo>* improvements) {
  char templ[] = "/tmp/qp-verify-XXXXXX";
  if (::mkdtemp(templ) == nullptr) return ErrnoError(errno, "mkdtemp");
  std::string dir = templ;
  auto cleanup = [&]() {
    auto names = env->ListDir(dir);
    if (names.ok()) {
      for (const auto& n : *names) (void)env->Unlink(JoinPath(dir, n));
    }
    (void)env->RemoveDir(dir);
  };
  Status s = WriteFileDurably(env, JoinPath(dir, "root.json"), trusted_root, 0644);
  RepoDirFetcher fetcher(env, repo_dir, &pending);
  tuf::UpdaterConfig config;
  config.metadata_dir = dir;
  config.metadata_url = RepoDirFetcher::kMetadataUrl;
  config.target_base_url = RepoDirFetcher::kTargetsUrl;
  tuf::Updater updater(config, env, &fetcher, clock);
  if (s.ok()) s = updater.Refresh();
  std::vector<tuf::TargetInfo> listed;
  if (s.ok()) {
    auto targets = updater.ListRoleTargets("improvements");
    if (!targets.ok()) s = targets.error();
    if (s.ok()) listed = *targets;
  }
  for (const auto& t : listed) {
    if (!s.ok()) break;
    auto bytes = updater.FetchTarget(t);
    if (!bytes.ok()) s = bytes.error();
  }
  if (s.ok()) {
    auto rollout = updater.GetTargetInfo("rollout.json");
    if (!rollout.ok()) {
      s = rollout.error();
    } else if (rollout->has_value()) {
      auto bytes = updater.FetchTarget(**rollout);
      if (!bytes.ok()) s = bytes.error();
    }
  }
  cleanup();
  if (!s.ok()) return s.error().WithContext("the repository would not verify on a device");
  if (improvements != nullptr) *improvements = std::move(listed);
  return OkStatus();
}

Status CommitChanges(Env* env, const RepoPaths& paths, const tuf::RepositoryWriter& writer,
                     Clock* clock) {
  const auto& files = writer.files();
  // A device that trusts the current root must accept what we are about to publish.
  auto root =
      ReadFileLimited(env, JoinPath(paths.repo_dir, "metadata/root.json"), tuf::kMaxRootBytes);
  std::vector<std::uint8_t> trusted;
  if (root.ok()) {
    trusted = *root;
  } else if (files.count("metadata/1.root.json") != 0) {
    trusted = files.at("metadata/1.root.json");
  } else {
    return root.error().WithContext("current root");
  }
  QP_RETURN_IF_ERROR(VerifyAsDevice(env, paths.repo_dir, files, trusted, clock));
  // Targets first, then versioned metadata, then the convenience root and the timestamp.
  std::vector<std::string> order;
  for (const auto& [name, bytes] : files) {
    if (name.rfind("targets/", 0) == 0) order.push_back(name);
  }
  for (const auto& [name, bytes] : files) {
    if (name.rfind("metadata/", 0) == 0 && name != "metadata/timestamp.json" &&
        name != "metadata/root.json") {
      order.push_back(name);
    }
  }
  for (const char* last : {"metadata/root.json", "metadata/timestamp.json"}) {
    if (files.count(last) != 0) order.push_back(last);
  }
  for (const auto& name : order) {
    std::string path = JoinPath(paths.repo_dir, name);
    QP_RETURN_IF_ERROR(MakeDirs(env, DirName(path), 0755));
    QP_RETURN_IF_ERROR(WriteFileDurably(env, path, files.at(name), 0644));
  }
  return OkStatus();
}

}  // namespace qp::online
