#include "tuf/updater.h"

#include <spdlog/spdlog.h>

#include <set>
#include <vector>

#include "core/durable_file.h"
#include "core/hash.h"

namespace qp::tuf {
namespace {

std::string WithSlash(std::string url) {
  if (!url.empty() && url.back() != '/') url.push_back('/');
  return url;
}

}  // namespace

std::string PercentEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
        c == '.' || c == '-' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

Updater::Updater(UpdaterConfig config, Env* env, Fetcher* fetcher, Clock* clock)
    : config_(std::move(config)), env_(env), fetcher_(fetcher), clock_(clock) {
  config_.metadata_url = WithSlash(config_.metadata_url);
  config_.target_base_url = WithSlash(config_.target_base_url);
}

std::string Updater::MetadataUrl(const std::string& role,
                                 std::optional<std::uint64_t> version) const {
  std::string url = config_.metadata_url;
  if (version) url += std::to_string(*version) + ".";
  return url + PercentEncode(role) + ".json";
}

std::string Updater::LocalPath(const std::string& role) const {
  return JoinPath(config_.metadata_dir, PercentEncode(role) + ".json");
}

Result<std::vector<std::uint8_t>> Updater::ReadLocal(const std::string& role, std::uint64_t max) {
  return ReadFileLimited(env_, LocalPath(role), max);
}

Status Updater::Persist(const std::string& role, const std::vector<std::uint8_t>& bytes) {
  Status s = WriteFileDurably(env_, LocalPath(role), bytes, 0644);
  if (!s.ok()) return s.error().WithContext("saving verified " + role + " metadata");
  return OkStatus();
}

void Updater::DropLocal(const std::string& role) {
  // The file no longer verifies under the trusted root (its keys were rotated away): it
  // must not stay among the verified metadata. Failure to remove is harmless: it is
  // re-checked at every load.
  (void)env_->Unlink(LocalPath(role));
}

Status Updater::Refresh() {
  trusted_.reset();
  QP_RETURN_IF_ERROR(LoadRoot());
  QP_RETURN_IF_ERROR(LoadTimestamp());
  QP_RETURN_IF_ERROR(LoadSnapshot());
  auto targets = LoadTargets("targets", "root");
  if (!targets.ok()) return targets.error();
  return OkStatus();
}

Status Updater::LoadRoot() {
  WallTime start = clock_->Now();
  auto local = ReadLocal("root", config_.root_max_length);
  if (!local.ok()) return local.error().WithContext("trusted root");
  QP_ASSIGN_OR_RETURN(TrustedMetadata trusted, TrustedMetadata::Create(*local, start));
  trusted_.emplace(std::move(trusted));
  const std::uint64_t first = trusted_->root().version;
  for (std::uint64_t next = first + 1; next <= first + config_.max_root_rotations; ++next) {
    auto bytes = fetcher_->Fetch(MetadataUrl("root", next), config_.root_max_length);
    if (!bytes.ok()) {
      if (bytes.error().code() == ErrorCode::kNotFound) break;  // the end of the chain
      return bytes.error().WithContext("root version " + std::to_string(next));
    }
    QP_RETURN_IF_ERROR(trusted_->UpdateRoot(*bytes));
    QP_RETURN_IF_ERROR(Persist("root", *bytes));
    spdlog::debug("tuf: trusted root version {}", next);
  }
  return trusted_->CheckRootNotExpired();
}

Status Updater::LoadTimestamp() {
  auto local = ReadLocal("timestamp", config_.timestamp_max_length);
  if (local.ok()) {
    auto s = trusted_->UpdateTimestamp(*local);
    if (!s.ok()) {
      spdlog::debug("tuf: local timestamp not valid as final: {}", s.error().ToString());
      // Fast-forward recovery: a timestamp that no longer verifies under the trusted root
      // (its key was rotated) is dropped, with the snapshot it vouched for.
      if (trusted_->timestamp() == nullptr) {
        DropLocal("timestamp");
        DropLocal("snapshot");
      }
    }
  }
  auto bytes =
      fetcher_->Fetch(MetadataUrl("timestamp", std::nullopt), config_.timestamp_max_length);
  if (!bytes.ok()) return bytes.error().WithContext("timestamp");
  QP_ASSIGN_OR_RETURN(bool replaced, trusted_->UpdateTimestamp(*bytes));
  if (!replaced) return OkStatus();  // same version as trusted: keep the stored one
  return Persist("timestamp", *bytes);
}

Status Updater::LoadSnapshot() {
  auto local = ReadLocal("snapshot", config_.snapshot_max_length);
  if (local.ok()) {
    auto s = trusted_->UpdateSnapshot(*local, /*from_local_cache=*/true);
    if (s.ok()) return OkStatus();  // the stored snapshot is the one timestamp names
    spdlog::debug("tuf: local snapshot not valid as final: {}", s.error().ToString());
    if (trusted_->snapshot() == nullptr) DropLocal("snapshot");
  }
  const MetaFile& listed = trusted_->timestamp()->snapshot_meta;
  std::optional<std::uint64_t> version;
  if (trusted_->root().consistent_snapshot) version = listed.version;
  QP_ASSIGN_OR_RETURN(std::uint64_t cap,
                      DownloadCap("snapshot.json", listed.length, config_.snapshot_max_length));
  auto bytes = fetcher_->Fetch(MetadataUrl("snapshot", version), cap);
  if (!bytes.ok()) return bytes.error().WithContext("snapshot");
  QP_RETURN_IF_ERROR(trusted_->UpdateSnapshot(*bytes, /*from_local_cache=*/false));
  return Persist("snapshot", *bytes);
}

Result<const Targets*> Updater::LoadTargets(const std::string& role, const std::string& delegator) {
  if (const Targets* t = trusted_->FindTargets(role, delegator)) return t;
  auto local = ReadLocal(role, config_.targets_max_length);
  if (local.ok()) {
    auto s = trusted_->UpdateTargets(*local, role, delegator);
    if (s.ok()) return trusted_->FindTargets(role, delegator);
    spdlog::debug("tuf: local {} not valid: {}", role, s.error().ToString());
  }
  const Snapshot* snapshot = trusted_->snapshot();
  auto listed = snapshot->meta.find(role + ".json");
  if (listed == snapshot->meta.end()) {
    return Error(ErrorCode::kVerificationFailed, role + " is not listed in snapshot");
  }
  std::optional<std::uint64_t> version;
  if (trusted_->root().consistent_snapshot) version = listed->second.version;
  QP_ASSIGN_OR_RETURN(std::uint64_t cap, DownloadCap(role + ".json", listed->second.length,
                                                     config_.targets_max_length));
  auto bytes = fetcher_->Fetch(MetadataUrl(role, version), cap);
  if (!bytes.ok()) return bytes.error().WithContext(role);
  QP_RETURN_IF_ERROR(trusted_->UpdateTargets(*bytes, role, delegator));
  QP_RETURN_IF_ERROR(Persist(role, *bytes));
  return trusted_->FindTargets(role, delegator);
}

Result<std::optional<TargetInfo>> Updater::GetTargetInfo(const std::string& target_path) {
  if (!trusted_ || trusted_->snapshot() == nullptr) QP_RETURN_IF_ERROR(Refresh());
  // Pre-order depth-first search; the stack's back is visited next.
  std::vector<std::pair<std::string, std::string>> to_visit = {{"targets", "root"}};
  std::set<std::string> visited;
  while (!to_visit.empty() && visited.size() < config_.max_delegations) {
    auto [role, delegator] = to_visit.back();
    to_visit.pop_back();
    if (visited.count(role) != 0) continue;
    QP_ASSIGN_OR_RETURN(const Targets* targets, LoadTargets(role, delegator));
    if (auto it = targets->targets.find(target_path); it != targets->targets.end()) {
      return std::optional<TargetInfo>(TargetInfo{target_path, it->second, role});
    }
    visited.insert(role);
    if (!targets->delegations) continue;
    std::vector<std::pair<std::string, std::string>> children;
    for (const auto& child : targets->delegations->roles) {
      if (!child.IsDelegatedPath(target_path)) continue;
      children.emplace_back(child.name, role);
      if (child.terminating) {
        // Nothing outside this role's subtree may answer for the path.
        to_visit.clear();
        break;
      }
    }
    to_visit.insert(to_visit.end(), children.rbegin(), children.rend());
  }
  if (!to_visit.empty()) {
    spdlog::warn("tuf: gave up looking for {} after {} roles", target_path, visited.size());
  }
  return std::optional<TargetInfo>();
}

Result<std::vector<TargetInfo>> Updater::ListRoleTargets(const std::string& role) {
  if (!trusted_ || trusted_->snapshot() == nullptr) QP_RETURN_IF_ERROR(Refresh());
  std::vector<std::pair<std::string, std::string>> to_visit = {{"targets", "root"}};
  std::set<std::string> visited;
  const Targets* found = nullptr;
  while (!to_visit.empty() && visited.size() < config_.max_delegations && found == nullptr) {
    auto [name, delegator] = to_visit.back();
    to_visit.pop_back();
    if (!visited.insert(name).second) continue;
    QP_ASSIGN_OR_RETURN(const Targets* targets, LoadTargets(name, delegator));
    if (name == role) {
      found = targets;
      break;
    }
    if (!targets->delegations) continue;
    const auto& roles = targets->delegations->roles;
    for (auto it = roles.rbegin(); it != roles.rend(); ++it) to_visit.emplace_back(it->name, name);
  }
  std::vector<TargetInfo> out;
  if (found == nullptr) return out;
  std::vector<std::string> paths;
  for (const auto& [path, file] : found->targets) paths.push_back(path);
  for (const auto& path : paths) {
    QP_ASSIGN_OR_RETURN(auto info, GetTargetInfo(path));
    if (info && info->role == role) out.push_back(std::move(*info));
  }
  return out;
}

std::string Updater::TargetUrl(const TargetInfo& target) const {
  std::string path = target.path;
  if (trusted_ && trusted_->root().consistent_snapshot && !target.file.hashes.empty()) {
    auto hash = target.file.hashes.find("sha256");
    if (hash == target.file.hashes.end()) hash = target.file.hashes.begin();
    path = ConsistentTargetPath(path, hash->second);
  }
  return config_.target_base_url + path;
}

bool Updater::IsDownloaded(const TargetInfo& target, const std::string& file_path) {
  auto bytes = ReadFileLimited(env_, file_path, target.file.length);
  if (!bytes.ok()) return false;
  return VerifyLengthAndHashes(*bytes, target.file.length, target.file.hashes, target.path).ok();
}

Result<std::uint64_t> Updater::DownloadCap(const std::string& what,
                                           std::optional<std::uint64_t> signed_length,
                                           std::uint64_t configured) {
  // A signed length only lowers the configured cap: an online key cannot make a device
  // buffer more than its configuration allows.
  if (signed_length && *signed_length > configured) {
    return Error(ErrorCode::kTooLarge, what + ": the signed metadata lists " +
                                           std::to_string(*signed_length) +
                                           " bytes, more than the " + std::to_string(configured) +
                                           " this client accepts");
  }
  return signed_length.value_or(configured);
}

Result<std::vector<std::uint8_t>> Updater::FetchTarget(const TargetInfo& target) {
  QP_RETURN_IF_ERROR(
      DownloadCap("target " + target.path, target.file.length, config_.target_max_length));
  auto bytes = fetcher_->Fetch(TargetUrl(target), target.file.length);
  if (!bytes.ok()) return bytes.error().WithContext("target " + target.path);
  QP_RETURN_IF_ERROR(VerifyLengthAndHashes(*bytes, target.file.length, target.file.hashes,
                                           "target " + target.path));
  return bytes;
}

Status Updater::DownloadTarget(const TargetInfo& target, const std::string& file_path) {
  QP_RETURN_IF_ERROR(
      DownloadCap("target " + target.path, target.file.length, config_.target_max_length));
  auto bytes = fetcher_->Fetch(TargetUrl(target), target.file.length);
  if (!bytes.ok()) return bytes.error().WithContext("target " + target.path);
  QP_RETURN_IF_ERROR(VerifyLengthAndHashes(*bytes, target.file.length, target.file.hashes,
                                           "target " + target.path));
  Status s = WriteFileDurably(env_, file_path, *bytes, 0644);
  if (!s.ok()) return s.error().WithContext("saving target " + target.path);
  return OkStatus();
}

}  // namespace qp::tuf
