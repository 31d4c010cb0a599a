#include "tuf/repository.h"

#include <algorithm>

#include "core/hash.h"
#include "tuf/fetcher.h"

namespace qp::tuf {
namespace {

constexpr auto kDay = std::chrono::hours(24);

std::vector<std::uint8_t> ToBytes(const std::string& s) { return {s.begin(), s.end()}; }

}  // namespace

std::string KeyIdOf(const crypto::PublicKeyDescription& key) {
  return Key::FromDescription(key).KeyId();
}

RepositoryWriter::RepositoryWriter(WallTime now, bool consistent_snapshot) : now_(now) {
  root_.consistent_snapshot = consistent_snapshot;
  root_.expires = now + 365 * kDay;
  for (const char* role : {"root", "timestamp", "snapshot", "targets"}) root_.roles[role] = {};
  Targets top;
  top.expires = now + 90 * kDay;
  targets_.emplace("targets", std::move(top));
  snapshot_.expires = now + 7 * kDay;
  snapshot_.meta["targets.json"] = MetaFile{};
  timestamp_.expires = now + kDay;
  dirty_targets_.insert("targets");
}

Result<RepositoryWriter> RepositoryWriter::Load(
    WallTime now,
    const std::function<Result<std::vector<std::uint8_t>>(const std::string&)>& read) {
  RepositoryWriter w(now);
  w.dirty_targets_.clear();
  w.targets_.clear();
  QP_ASSIGN_OR_RETURN(auto root_bytes, read("root.json"));
  QP_ASSIGN_OR_RETURN(auto root, ParseRoot(root_bytes));
  w.root_ = root.signed_part;
  QP_ASSIGN_OR_RETURN(auto ts_bytes, read("timestamp.json"));
  QP_ASSIGN_OR_RETURN(auto ts, ParseTimestamp(ts_bytes));
  w.timestamp_ = ts.signed_part;
  std::uint64_t sv = w.timestamp_.snapshot_meta.version;
  QP_ASSIGN_OR_RETURN(auto snap_bytes, read(w.MetadataFileName("snapshot", sv)));
  QP_ASSIGN_OR_RETURN(auto snap, ParseSnapshot(snap_bytes));
  w.snapshot_ = snap.signed_part;
  for (const auto& [file, meta] : w.snapshot_.meta) {
    if (file.size() < 6 || file.substr(file.size() - 5) != ".json") continue;
    std::string role = file.substr(0, file.size() - 5);
    QP_ASSIGN_OR_RETURN(auto bytes, read(w.MetadataFileName(role, meta.version)));
    auto t = ParseTargets(bytes);
    if (!t.ok()) return t.error().WithContext(role);
    w.targets_.emplace(role, t->signed_part);
    w.published_.insert(role);
  }
  for (const char* role : {"root", "timestamp", "snapshot"}) w.published_.insert(role);
  return w;
}

std::vector<std::string> RepositoryWriter::TargetsRoles() const {
  std::vector<std::string> out;
  for (const auto& [name, t] : targets_) out.push_back(name);
  return out;
}

void RepositoryWriter::AddSigner(const std::string& role, SigningKeyPtr key) {
  signers_[role][KeyIdOf(key->Public())] = std::move(key);
}

void RepositoryWriter::RemoveSigner(const std::string& role, const std::string& keyid) {
  signers_[role].erase(keyid);
}

bool RepositoryWriter::HasSigner(const std::string& role, const std::string& keyid) const {
  auto it = signers_.find(role);
  return it != signers_.end() && it->second.count(keyid) != 0;
}

std::string RepositoryWriter::AddRootRoleKey(const std::string& role,
                                             const crypto::PublicKeyDescription& key) {
  Key k = Key::FromDescription(key);
  std::string id = k.KeyId();
  root_.keys[id] = std::move(k);
  auto& ids = root_.roles[role].keyids;
  if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
  return id;
}

void RepositoryWriter::RemoveRootRoleKey(const std::string& role, const std::string& keyid) {
  auto& ids = root_.roles[role].keyids;
  ids.erase(std::remove(ids.begin(), ids.end(), keyid), ids.end());
  bool used = false;
  for (const auto& [name, rk] : root_.roles) {
    used = used || std::find(rk.keyids.begin(), rk.keyids.end(), keyid) != rk.keyids.end();
  }
  if (!used) root_.keys.erase(keyid);
}

void RepositoryWriter::AddDelegation(const std::string& delegator, DelegatedRole role) {
  Targets& parent = targets_.at(delegator);
  if (!parent.delegations) parent.delegations = Delegations{};
  std::string name = role.name;
  parent.delegations->roles.push_back(std::move(role));
  if (targets_.count(name) == 0) {
    Targets t;
    t.expires = now_ + 90 * kDay;
    targets_.emplace(name, std::move(t));
    snapshot_.meta[name + ".json"] = MetaFile{};
    dirty_targets_.insert(name);
  }
  dirty_targets_.insert(delegator);
}

std::string RepositoryWriter::AddDelegatedKey(const std::string& delegator, const std::string& role,
                                              const crypto::PublicKeyDescription& key) {
  Targets& parent = targets_.at(delegator);
  Key k = Key::FromDescription(key);
  std::string id = k.KeyId();
  parent.delegations->keys[id] = std::move(k);
  for (auto& r : parent.delegations->roles) {
    if (r.name == role && std::find(r.keyids.begin(), r.keyids.end(), id) == r.keyids.end()) {
      r.keyids.push_back(id);
    }
  }
  dirty_targets_.insert(delegator);
  return id;
}

void RepositoryWriter::AddTarget(const std::string& role, const std::string& path,
                                 std::span<const std::uint8_t> content, const Json& custom) {
  TargetFile file;
  file.length = content.size();
  file.hashes["sha256"] = HexEncode(Sha256Of(content));
  file.hashes["sha512"] = HexEncode(Sha512Of(content));
  file.custom = custom;
  std::string stored =
      root_.consistent_snapshot ? ConsistentTargetPath(path, file.hashes["sha256"]) : path;
  files_["targets/" + stored] = std::vector<std::uint8_t>(content.begin(), content.end());
  targets_.at(role).targets[path] = std::move(file);
  dirty_targets_.insert(role);
}

Result<std::vector<std::uint8_t>> RepositoryWriter::SignJson(const std::string& role,
                                                             const Json& signed_json) const {
  QP_ASSIGN_OR_RETURN(std::string canonical, CanonicalJson(signed_json));
  std::span<const std::uint8_t> message(reinterpret_cast<const std::uint8_t*>(canonical.data()),
                                        canonical.size());
  Json signatures = Json::array();
  auto it = signers_.find(role);
  if (it != signers_.end()) {
    for (const auto& [keyid, key] : it->second) {
      QP_ASSIGN_OR_RETURN(std::vector<std::uint8_t> sig, key->Sign(message));
      signatures.push_back(Json{{"keyid", keyid}, {"sig", HexEncode(sig)}});
    }
  }
  Json doc{{"signatures", signatures}, {"signed", signed_json}};
  return ToBytes(PrettyJson(doc));
}

Result<std::vector<std::uint8_t>> RepositoryWriter::Sign(const std::string& role) const {
  if (role == "root") return SignJson(role, ToJson(root_));
  if (role == "timestamp") return SignJson(role, ToJson(timestamp_));
  if (role == "snapshot") return SignJson(role, ToJson(snapshot_));
  auto it = targets_.find(role);
  if (it == targets_.end()) return Error(ErrorCode::kNotFound, "no role " + role);
  return SignJson(role, ToJson(it->second));
}

std::string RepositoryWriter::MetadataFileName(const std::string& role,
                                               std::uint64_t version) const {
  std::string name = PercentEncode(role) + ".json";
  if (role == "timestamp") return name;
  if (role == "root" || root_.consistent_snapshot) return std::to_string(version) + "." + name;
  return name;
}

Common& RepositoryWriter::CommonOf(const std::string& role) {
  if (role == "root") return root_;
  if (role == "timestamp") return timestamp_;
  if (role == "snapshot") return snapshot_;
  return targets_.at(role);
}

void RepositoryWriter::BumpIfPublished(const std::string& role) {
  if (published_.count(role) != 0) CommonOf(role).version++;
  published_.insert(role);
}

Status RepositoryWriter::PublishRoot() {
  BumpIfPublished("root");
  QP_ASSIGN_OR_RETURN(auto bytes, Sign("root"));
  files_["metadata/" + MetadataFileName("root", root_.version)] = bytes;
  files_["metadata/root.json"] = std::move(bytes);
  return OkStatus();
}

Status RepositoryWriter::PublishTargets(const std::string& role) {
  BumpIfPublished(role);
  QP_ASSIGN_OR_RETURN(auto bytes, Sign(role));
  const Targets& t = targets_.at(role);
  files_["metadata/" + MetadataFileName(role, t.version)] = std::move(bytes);
  snapshot_.meta[role + ".json"] = MetaFile{t.version, std::nullopt, {}};
  dirty_targets_.erase(role);
  return OkStatus();
}

Status RepositoryWriter::PublishSnapshot() {
  BumpIfPublished("snapshot");
  QP_ASSIGN_OR_RETURN(auto bytes, Sign("snapshot"));
  MetaFile meta;
  meta.version = snapshot_.version;
  meta.length = bytes.size();
  meta.hashes["sha256"] = HexEncode(Sha256Of(bytes));
  timestamp_.snapshot_meta = meta;
  files_["metadata/" + MetadataFileName("snapshot", snapshot_.version)] = std::move(bytes);
  return OkStatus();
}

Status RepositoryWriter::PublishTimestamp() {
  BumpIfPublished("timestamp");
  QP_ASSIGN_OR_RETURN(auto bytes, Sign("timestamp"));
  files_["metadata/timestamp.json"] = std::move(bytes);
  return OkStatus();
}

Status RepositoryWriter::PublishAll() {
  std::set<std::string> dirty = dirty_targets_;
  for (const auto& role : dirty) QP_RETURN_IF_ERROR(PublishTargets(role));
  QP_RETURN_IF_ERROR(PublishSnapshot());
  return PublishTimestamp();
}

}  // namespace qp::tuf
