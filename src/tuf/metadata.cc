#include "tuf/metadata.h"

#include <fnmatch.h>

#include <algorithm>
#include <ctime>
#include <set>

#include "core/hash.h"

namespace qp::tuf {
namespace {

// Field access with errors that name the field. `where` is e.g. "timestamp.signed".
Result<const Json*> Field(const Json& obj, const char* name, const std::string& where) {
  auto it = obj.find(name);
  if (it == obj.end()) return Error(ErrorCode::kCorrupt, where + ": missing \"" + name + "\"");
  return &*it;
}

Result<std::string> StringField(const Json& obj, const char* name, const std::string& where) {
  QP_ASSIGN_OR_RETURN(const Json* v, Field(obj, name, where));
  if (!v->is_string()) {
    return Error(ErrorCode::kCorrupt, where + "." + name + ": expected a string");
  }
  return v->get<std::string>();
}

Result<std::uint64_t> UintValue(const Json& v, const std::string& where) {
  if (!v.is_number_integer() ||
      (v.is_number_integer() && !v.is_number_unsigned() && v.get<std::int64_t>() < 0)) {
    return Error(ErrorCode::kCorrupt, where + ": expected a non-negative integer");
  }
  return v.get<std::uint64_t>();
}

Result<std::uint64_t> UintField(const Json& obj, const char* name, const std::string& where) {
  QP_ASSIGN_OR_RETURN(const Json* v, Field(obj, name, where));
  return UintValue(*v, where + "." + name);
}

Result<const Json*> ObjectField(const Json& obj, const char* name, const std::string& where) {
  QP_ASSIGN_OR_RETURN(const Json* v, Field(obj, name, where));
  if (!v->is_object()) {
    return Error(ErrorCode::kCorrupt, where + "." + name + ": expected an object");
  }
  return v;
}

Result<std::vector<std::string>> StringList(const Json& v, const std::string& where) {
  if (!v.is_array()) return Error(ErrorCode::kCorrupt, where + ": expected an array");
  std::vector<std::string> out;
  for (const auto& item : v) {
    if (!item.is_string()) return Error(ErrorCode::kCorrupt, where + ": expected strings");
    out.push_back(item.get<std::string>());
  }
  return out;
}

Result<std::uint32_t> ThresholdField(const Json& obj, const std::string& where) {
  QP_ASSIGN_OR_RETURN(std::uint64_t t, UintField(obj, "threshold", where));
  if (t < 1 || t > 1000) return Error(ErrorCode::kCorrupt, where + ".threshold: must be 1..1000");
  return static_cast<std::uint32_t>(t);
}

Result<std::map<std::string, std::string>> Hashes(const Json& v, const std::string& where) {
  if (!v.is_object()) return Error(ErrorCode::kCorrupt, where + ": expected an object");
  std::map<std::string, std::string> out;
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (!it.value().is_string()) {
      return Error(ErrorCode::kCorrupt, where + "." + it.key() + ": expected a hex string");
    }
    out[it.key()] = it.value().get<std::string>();
  }
  return out;
}

Result<Key> ParseKey(const Json& v, const std::string& where) {
  if (!v.is_object()) return Error(ErrorCode::kCorrupt, where + ": expected a key object");
  Key key;
  QP_ASSIGN_OR_RETURN(key.description.keytype, StringField(v, "keytype", where));
  QP_ASSIGN_OR_RETURN(key.description.scheme, StringField(v, "scheme", where));
  QP_ASSIGN_OR_RETURN(const Json* keyval, ObjectField(v, "keyval", where));
  QP_ASSIGN_OR_RETURN(key.description.public_value,
                      StringField(*keyval, "public", where + ".keyval"));
  key.json = v;
  auto verifier = crypto::VerifyingKey::Parse(key.description);
  if (verifier.ok()) key.verifier = *verifier;
  return key;
}

Result<std::map<std::string, Key>> ParseKeys(const Json& v, const std::string& where) {
  if (!v.is_object()) return Error(ErrorCode::kCorrupt, where + ": expected an object");
  std::map<std::string, Key> keys;
  for (auto it = v.begin(); it != v.end(); ++it) {
    QP_ASSIGN_OR_RETURN(Key key, ParseKey(it.value(), where + "." + it.key()));
    keys.emplace(it.key(), std::move(key));
  }
  return keys;
}

Result<MetaFile> ParseMetaFile(const Json& v, const std::string& where) {
  if (!v.is_object()) return Error(ErrorCode::kCorrupt, where + ": expected an object");
  MetaFile meta;
  QP_ASSIGN_OR_RETURN(meta.version, UintField(v, "version", where));
  if (meta.version < 1) return Error(ErrorCode::kCorrupt, where + ".version: must be >= 1");
  if (auto it = v.find("length"); it != v.end()) {
    QP_ASSIGN_OR_RETURN(meta.length, UintValue(*it, where + ".length"));
  }
  if (auto it = v.find("hashes"); it != v.end()) {
    QP_ASSIGN_OR_RETURN(meta.hashes, Hashes(*it, where + ".hashes"));
    if (meta.hashes.empty()) return Error(ErrorCode::kCorrupt, where + ".hashes: empty");
  }
  return meta;
}

Status CheckSpecVersion(const std::string& version, const std::string& where) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    std::size_t dot = version.find('.', start);
    parts.push_back(version.substr(start, dot == std::string::npos ? dot : dot - start));
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  bool digits = true;
  for (const auto& p : parts) {
    if (p.empty() || p.find_first_not_of("0123456789") != std::string::npos) digits = false;
  }
  if (!digits || parts.size() < 2 || parts.size() > 3) {
    return Error(ErrorCode::kCorrupt, where + ".spec_version: \"" + version + "\" is malformed");
  }
  if (parts[0] != "1") {
    return Error(ErrorCode::kUnsupported,
                 where + ".spec_version: unsupported major version " + version);
  }
  return OkStatus();
}

// Parses the envelope and the fields every role has; fills `common` and returns the
// `signed` object.
template <typename T>
Result<Metadata<T>> ParseEnvelope(std::span<const std::uint8_t> bytes, RoleType type) {
  std::string role(RoleTypeName(type));
  QP_ASSIGN_OR_RETURN(Json doc, ParseJson(bytes));
  if (!doc.is_object()) return Error(ErrorCode::kCorrupt, role + ": not a JSON object");
  Metadata<T> md;
  QP_ASSIGN_OR_RETURN(const Json* sig_list, Field(doc, "signatures", role));
  if (!sig_list->is_array()) {
    return Error(ErrorCode::kCorrupt, role + ".signatures: expected an array");
  }
  std::set<std::string> seen;
  for (const auto& s : *sig_list) {
    if (!s.is_object()) return Error(ErrorCode::kCorrupt, role + ".signatures: expected objects");
    Signature sig;
    QP_ASSIGN_OR_RETURN(sig.keyid, StringField(s, "keyid", role + ".signatures[]"));
    QP_ASSIGN_OR_RETURN(sig.sig, StringField(s, "sig", role + ".signatures[]"));
    if (!seen.insert(sig.keyid).second) {
      return Error(ErrorCode::kCorrupt, role + ": more than one signature by key " + sig.keyid);
    }
    md.signatures.push_back(std::move(sig));
  }
  QP_ASSIGN_OR_RETURN(const Json* signed_obj, ObjectField(doc, "signed", role));
  md.signed_json = *signed_obj;
  QP_ASSIGN_OR_RETURN(md.canonical_signed, CanonicalJson(md.signed_json));
  std::string where = role + ".signed";
  QP_ASSIGN_OR_RETURN(std::string type_name, StringField(*signed_obj, "_type", where));
  if (type_name != role) {
    return Error(ErrorCode::kCorrupt,
                 where + "._type: \"" + type_name + "\", expected \"" + role + "\"");
  }
  Common& common = md.signed_part;
  QP_ASSIGN_OR_RETURN(common.version, UintField(*signed_obj, "version", where));
  if (common.version < 1) return Error(ErrorCode::kCorrupt, where + ".version: must be >= 1");
  QP_ASSIGN_OR_RETURN(common.spec_version, StringField(*signed_obj, "spec_version", where));
  QP_RETURN_IF_ERROR(CheckSpecVersion(common.spec_version, where));
  QP_ASSIGN_OR_RETURN(std::string expires, StringField(*signed_obj, "expires", where));
  auto when = ParseExpiry(expires);
  if (!when.ok()) return when.error().WithContext(where + ".expires");
  common.expires = *when;
  return md;
}

// Records the fields of `obj` not in `known` as the unknown fields of `common`.
void KeepUnknown(const Json& obj, std::initializer_list<const char*> known, Common& common) {
  common.unknown = Json::object();
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    bool is_known = it.key() == "_type" || it.key() == "version" || it.key() == "expires" ||
                    it.key() == "spec_version";
    for (const char* k : known) is_known = is_known || it.key() == k;
    if (!is_known) common.unknown[it.key()] = it.value();
  }
}

Json CommonJson(const Common& c, RoleType type) {
  Json j = c.unknown.is_object() ? c.unknown : Json::object();
  j["_type"] = RoleTypeName(type);
  j["version"] = c.version;
  j["expires"] = FormatExpiry(c.expires);
  j["spec_version"] = c.spec_version;
  return j;
}

Json KeysJson(const std::map<std::string, Key>& keys) {
  Json j = Json::object();
  for (const auto& [id, key] : keys) j[id] = key.json;
  return j;
}

Result<DelegatedRole> ParseDelegatedRole(const Json& v, const std::string& where) {
  if (!v.is_object()) return Error(ErrorCode::kCorrupt, where + ": expected an object");
  DelegatedRole role;
  QP_ASSIGN_OR_RETURN(role.name, StringField(v, "name", where));
  std::string w = where + "(" + role.name + ")";
  if (role.name.empty() || role.name == "root" || role.name == "timestamp" ||
      role.name == "snapshot" || role.name == "targets") {
    return Error(ErrorCode::kCorrupt,
                 w + ": a delegated role may not be named \"" + role.name + "\"");
  }
  QP_ASSIGN_OR_RETURN(const Json* keyids, Field(v, "keyids", w));
  QP_ASSIGN_OR_RETURN(role.keyids, StringList(*keyids, w + ".keyids"));
  QP_ASSIGN_OR_RETURN(role.threshold, ThresholdField(v, w));
  QP_ASSIGN_OR_RETURN(const Json* terminating, Field(v, "terminating", w));
  if (!terminating->is_boolean()) {
    return Error(ErrorCode::kCorrupt, w + ".terminating: expected a boolean");
  }
  role.terminating = terminating->get<bool>();
  auto paths = v.find("paths");
  auto prefixes = v.find("path_hash_prefixes");
  if (paths != v.end() && prefixes != v.end()) {
    return Error(ErrorCode::kCorrupt, w + ": both paths and path_hash_prefixes are set");
  }
  if (paths != v.end()) {
    QP_ASSIGN_OR_RETURN(role.paths, StringList(*paths, w + ".paths"));
  } else if (prefixes != v.end()) {
    QP_ASSIGN_OR_RETURN(role.path_hash_prefixes, StringList(*prefixes, w + ".path_hash_prefixes"));
  } else {
    return Error(ErrorCode::kCorrupt, w + ": neither paths nor path_hash_prefixes is set");
  }
  return role;
}

}  // namespace

std::string_view RoleTypeName(RoleType type) {
  switch (type) {
    case RoleType::kRoot:
      return "root";
    case RoleType::kTimestamp:
      return "timestamp";
    case RoleType::kSnapshot:
      return "snapshot";
    case RoleType::kTargets:
      return "targets";
  }
  return "?";
}

Key Key::FromDescription(const crypto::PublicKeyDescription& description) {
  Key key;
  key.description = description;
  key.json = Json{{"keytype", description.keytype},
                  {"scheme", description.scheme},
                  {"keyval", Json{{"public", description.public_value}}}};
  auto verifier = crypto::VerifyingKey::Parse(description);
  if (verifier.ok()) key.verifier = *verifier;
  return key;
}

std::string Key::KeyId() const {
  auto canonical = CanonicalJson(json);
  return HexEncode(Sha256Of(canonical.ok() ? *canonical : std::string()));
}

bool MatchTargetPattern(std::string_view pattern, std::string_view target_path) {
  // Compare segment by segment so that '*' never matches across '/'.
  std::size_t p = 0;
  std::size_t t = 0;
  while (true) {
    std::size_t pe = pattern.find('/', p);
    std::size_t te = target_path.find('/', t);
    std::string pseg(pattern.substr(p, pe == std::string_view::npos ? pe : pe - p));
    std::string tseg(target_path.substr(t, te == std::string_view::npos ? te : te - t));
    if (fnmatch(pseg.c_str(), tseg.c_str(), FNM_NOESCAPE) != 0) return false;
    if ((pe == std::string_view::npos) != (te == std::string_view::npos)) return false;
    if (pe == std::string_view::npos) return true;
    p = pe + 1;
    t = te + 1;
  }
}

bool DelegatedRole::IsDelegatedPath(std::string_view target_path) const {
  if (paths) {
    for (const auto& pattern : *paths) {
      if (MatchTargetPattern(pattern, target_path)) return true;
    }
    return false;
  }
  if (path_hash_prefixes) {
    std::string hash = HexEncode(Sha256Of(target_path));
    for (const auto& prefix : *path_hash_prefixes) {
      if (hash.compare(0, prefix.size(), prefix) == 0) return true;
    }
  }
  return false;
}

Result<WallTime> ParseExpiry(const std::string& text) {
  // Exactly YYYY-MM-DDTHH:MM:SSZ.
  static constexpr char kShape[] = "dddd-dd-ddTdd:dd:ddZ";
  if (text.size() != sizeof(kShape) - 1) {
    return Error(ErrorCode::kCorrupt, "\"" + text + "\" is not YYYY-MM-DDTHH:MM:SSZ");
  }
  for (std::size_t i = 0; i < text.size(); ++i) {
    bool ok = kShape[i] == 'd' ? (text[i] >= '0' && text[i] <= '9') : text[i] == kShape[i];
    if (!ok) return Error(ErrorCode::kCorrupt, "\"" + text + "\" is not YYYY-MM-DDTHH:MM:SSZ");
  }
  std::tm tm{};
  tm.tm_year = std::stoi(text.substr(0, 4)) - 1900;
  tm.tm_mon = std::stoi(text.substr(5, 2)) - 1;
  tm.tm_mday = std::stoi(text.substr(8, 2));
  tm.tm_hour = std::stoi(text.substr(11, 2));
  tm.tm_min = std::stoi(text.substr(14, 2));
  tm.tm_sec = std::stoi(text.substr(17, 2));
  if (tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 || tm.tm_min > 59 ||
      tm.tm_sec > 60) {
    return Error(ErrorCode::kCorrupt, "\"" + text + "\" is not a valid date");
  }
  // The clock counts nanoseconds in 64 bits (years 1678..2262): dates beyond are clamped,
  // which keeps their meaning ("expires after anything we can check") without overflow.
  constexpr std::int64_t kLimit = 9'000'000'000;  // seconds, about year 2255
  std::int64_t seconds = static_cast<std::int64_t>(timegm(&tm));
  seconds = std::clamp<std::int64_t>(seconds, -kLimit, kLimit);
  return WallTime(std::chrono::seconds(seconds));
}

std::string FormatExpiry(WallTime time) {
  std::time_t t = std::chrono::system_clock::to_time_t(time);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Status VerifyThreshold(std::string_view what, const std::string& canonical_signed,
                       const std::vector<Signature>& signatures,
                       const std::map<std::string, Key>& keys,
                       const std::vector<std::string>& role_keyids, std::uint32_t threshold) {
  std::span<const std::uint8_t> message(
      reinterpret_cast<const std::uint8_t*>(canonical_signed.data()), canonical_signed.size());
  // A key counts once, however many key ids it is listed under.
  std::set<std::string> counted_ids;
  std::set<std::string> counted_keys;
  for (const auto& keyid : role_keyids) {
    if (counted_ids.count(keyid) != 0) continue;
    auto key = keys.find(keyid);
    if (key == keys.end() || !key->second.verifier) continue;
    const Signature* sig = nullptr;
    for (const auto& s : signatures) {
      if (s.keyid == keyid) sig = &s;
    }
    if (sig == nullptr || sig->sig.empty()) continue;
    auto raw = HexDecode(sig->sig);
    if (!raw.ok()) continue;
    if (!key->second.verifier->Verify(message, *raw).ok()) continue;
    // By the decoded key, not its spelling: one key written twice counts once.
    const auto& der = key->second.verifier->identity();
    if (!counted_keys.insert(std::string(der.begin(), der.end())).second) continue;
    counted_ids.insert(keyid);
  }
  if (counted_ids.size() < threshold) {
    return Error(ErrorCode::kVerificationFailed,
                 std::string(what) + ": " + std::to_string(counted_ids.size()) + " of " +
                     std::to_string(threshold) + " required signatures");
  }
  return OkStatus();
}

Result<Metadata<Root>> ParseRoot(std::span<const std::uint8_t> bytes) {
  QP_ASSIGN_OR_RETURN(auto md, ParseEnvelope<Root>(bytes, RoleType::kRoot));
  const Json& s = md.signed_json;
  const std::string where = "root.signed";
  Root& root = md.signed_part;
  QP_ASSIGN_OR_RETURN(const Json* cs, Field(s, "consistent_snapshot", where));
  if (!cs->is_boolean()) {
    return Error(ErrorCode::kCorrupt, where + ".consistent_snapshot: expected a boolean");
  }
  root.consistent_snapshot = cs->get<bool>();
  QP_ASSIGN_OR_RETURN(const Json* keys, ObjectField(s, "keys", where));
  QP_ASSIGN_OR_RETURN(root.keys, ParseKeys(*keys, where + ".keys"));
  QP_ASSIGN_OR_RETURN(const Json* roles, ObjectField(s, "roles", where));
  for (const char* name : {"root", "timestamp", "snapshot", "targets"}) {
    std::string w = where + ".roles." + name;
    QP_ASSIGN_OR_RETURN(const Json* r, ObjectField(*roles, name, where + ".roles"));
    RoleKeys rk;
    QP_ASSIGN_OR_RETURN(const Json* keyids, Field(*r, "keyids", w));
    QP_ASSIGN_OR_RETURN(rk.keyids, StringList(*keyids, w + ".keyids"));
    QP_ASSIGN_OR_RETURN(rk.threshold, ThresholdField(*r, w));
    root.roles[name] = std::move(rk);
  }
  if (roles->size() != 4) {
    return Error(ErrorCode::kCorrupt, where + ".roles: only the four top-level roles belong here");
  }
  KeepUnknown(s, {"consistent_snapshot", "keys", "roles"}, root);
  return md;
}

Result<Metadata<Timestamp>> ParseTimestamp(std::span<const std::uint8_t> bytes) {
  QP_ASSIGN_OR_RETURN(auto md, ParseEnvelope<Timestamp>(bytes, RoleType::kTimestamp));
  const std::string where = "timestamp.signed";
  QP_ASSIGN_OR_RETURN(const Json* meta, ObjectField(md.signed_json, "meta", where));
  QP_ASSIGN_OR_RETURN(const Json* snap, ObjectField(*meta, "snapshot.json", where + ".meta"));
  QP_ASSIGN_OR_RETURN(md.signed_part.snapshot_meta,
                      ParseMetaFile(*snap, where + ".meta.snapshot.json"));
  KeepUnknown(md.signed_json, {"meta"}, md.signed_part);
  return md;
}

Result<Metadata<Snapshot>> ParseSnapshot(std::span<const std::uint8_t> bytes) {
  QP_ASSIGN_OR_RETURN(auto md, ParseEnvelope<Snapshot>(bytes, RoleType::kSnapshot));
  const std::string where = "snapshot.signed";
  QP_ASSIGN_OR_RETURN(const Json* meta, ObjectField(md.signed_json, "meta", where));
  for (auto it = meta->begin(); it != meta->end(); ++it) {
    QP_ASSIGN_OR_RETURN(MetaFile m, ParseMetaFile(it.value(), where + ".meta." + it.key()));
    md.signed_part.meta.emplace(it.key(), std::move(m));
  }
  KeepUnknown(md.signed_json, {"meta"}, md.signed_part);
  return md;
}

Result<Metadata<Targets>> ParseTargets(std::span<const std::uint8_t> bytes) {
  QP_ASSIGN_OR_RETURN(auto md, ParseEnvelope<Targets>(bytes, RoleType::kTargets));
  const std::string where = "targets.signed";
  Targets& t = md.signed_part;
  QP_ASSIGN_OR_RETURN(const Json* targets, ObjectField(md.signed_json, "targets", where));
  for (auto it = targets->begin(); it != targets->end(); ++it) {
    std::string w = where + ".targets[" + it.key() + "]";
    if (!it.value().is_object()) return Error(ErrorCode::kCorrupt, w + ": expected an object");
    TargetFile file;
    QP_ASSIGN_OR_RETURN(file.length, UintField(it.value(), "length", w));
    QP_ASSIGN_OR_RETURN(const Json* hashes, Field(it.value(), "hashes", w));
    QP_ASSIGN_OR_RETURN(file.hashes, Hashes(*hashes, w + ".hashes"));
    if (file.hashes.empty()) return Error(ErrorCode::kCorrupt, w + ".hashes: empty");
    if (auto c = it.value().find("custom"); c != it.value().end()) file.custom = *c;
    t.targets.emplace(it.key(), std::move(file));
  }
  if (auto d = md.signed_json.find("delegations"); d != md.signed_json.end()) {
    std::string w = where + ".delegations";
    if (!d->is_object()) return Error(ErrorCode::kCorrupt, w + ": expected an object");
    Delegations delegations;
    QP_ASSIGN_OR_RETURN(const Json* keys, ObjectField(*d, "keys", w));
    QP_ASSIGN_OR_RETURN(delegations.keys, ParseKeys(*keys, w + ".keys"));
    QP_ASSIGN_OR_RETURN(const Json* roles, Field(*d, "roles", w));
    if (!roles->is_array()) return Error(ErrorCode::kCorrupt, w + ".roles: expected an array");
    std::set<std::string> names;
    for (const auto& r : *roles) {
      QP_ASSIGN_OR_RETURN(DelegatedRole role, ParseDelegatedRole(r, w + ".roles"));
      if (!names.insert(role.name).second) {
        return Error(ErrorCode::kCorrupt, w + ".roles: \"" + role.name + "\" listed twice");
      }
      delegations.roles.push_back(std::move(role));
    }
    t.delegations = std::move(delegations);
  }
  KeepUnknown(md.signed_json, {"targets", "delegations"}, t);
  return md;
}

Json MetaFileToJson(const MetaFile& meta) {
  Json j{{"version", meta.version}};
  if (meta.length) j["length"] = *meta.length;
  if (!meta.hashes.empty()) j["hashes"] = meta.hashes;
  return j;
}

Json TargetFileToJson(const TargetFile& target) {
  Json j{{"length", target.length}, {"hashes", target.hashes}};
  if (!target.custom.is_null()) j["custom"] = target.custom;
  return j;
}

Json ToJson(const Root& root) {
  Json j = CommonJson(root, RoleType::kRoot);
  j["consistent_snapshot"] = root.consistent_snapshot;
  j["keys"] = KeysJson(root.keys);
  Json roles = Json::object();
  for (const auto& [name, rk] : root.roles) {
    roles[name] = Json{{"keyids", rk.keyids}, {"threshold", rk.threshold}};
  }
  j["roles"] = roles;
  return j;
}

Json ToJson(const Timestamp& timestamp) {
  Json j = CommonJson(timestamp, RoleType::kTimestamp);
  j["meta"] = Json{{"snapshot.json", MetaFileToJson(timestamp.snapshot_meta)}};
  return j;
}

Json ToJson(const Snapshot& snapshot) {
  Json j = CommonJson(snapshot, RoleType::kSnapshot);
  Json meta = Json::object();
  for (const auto& [name, m] : snapshot.meta) meta[name] = MetaFileToJson(m);
  j["meta"] = meta;
  return j;
}

Json ToJson(const Targets& targets) {
  Json j = CommonJson(targets, RoleType::kTargets);
  Json files = Json::object();
  for (const auto& [path, t] : targets.targets) files[path] = TargetFileToJson(t);
  j["targets"] = files;
  if (targets.delegations) {
    Json roles = Json::array();
    for (const auto& r : targets.delegations->roles) {
      Json role{{"name", r.name},
                {"keyids", r.keyids},
                {"threshold", r.threshold},
                {"terminating", r.terminating}};
      if (r.paths) role["paths"] = *r.paths;
      if (r.path_hash_prefixes) role["path_hash_prefixes"] = *r.path_hash_prefixes;
      roles.push_back(role);
    }
    j["delegations"] = Json{{"keys", KeysJson(targets.delegations->keys)}, {"roles", roles}};
  }
  return j;
}

std::string ConsistentTargetPath(std::string_view path, std::string_view hash) {
  std::size_t slash = path.rfind('/');
  std::string_view dir = slash == std::string_view::npos ? "" : path.substr(0, slash + 1);
  std::string_view name = slash == std::string_view::npos ? path : path.substr(slash + 1);
  return std::string(dir) + std::string(hash) + "." + std::string(name);
}

}  // namespace qp::tuf
