// The TUF 1.0 metadata model: root, timestamp, snapshot, targets (top-level and delegated),
// parsed from the bytes received and serialisable back for the repository writer.
//
// Parsing keeps the whole `signed` object (unknown fields included) and its canonical form,
// which is what signatures cover; callers store the bytes as received, never a
// re-serialisation. `_type` must match the expected role; a repeated key id among the
// signatures rejects the metadata; signatures that are invalid, empty or by unknown keys do
// not count towards a threshold (VerifyThreshold). Pure; thread-compatible.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "crypto/keys.h"
#include "tuf/canonical_json.h"

namespace qp::tuf {

enum class RoleType { kRoot, kTimestamp, kSnapshot, kTargets };
std::string_view RoleTypeName(RoleType type);  // "root", "timestamp", ...

// The spec version this implementation writes, and whose major version it reads.
inline constexpr std::string_view kSpecVersion = "1.0.31";

struct Key {
  crypto::PublicKeyDescription description;
  Json json;  // the key object as written (keyid = SHA-256 of its canonical form)
  // Null when the key type is unsupported or the key does not parse: such a key simply
  // never verifies a signature.
  std::shared_ptr<const crypto::VerifyingKey> verifier;

  // A key object for `description` ({"keytype", "scheme", "keyval": {"public"}}).
  static Key FromDescription(const crypto::PublicKeyDescription& description);
  // Lowercase hex SHA-256 of the canonical form of `json`.
  std::string KeyId() const;
};

struct RoleKeys {
  std::vector<std::string> keyids;
  std::uint32_t threshold = 1;
};

// An entry of timestamp's or snapshot's `meta`.
struct MetaFile {
  std::uint64_t version = 1;
  std::optional<std::uint64_t> length;
  std::map<std::string, std::string> hashes;  // algorithm -> lowercase hex
};

struct TargetFile {
  std::uint64_t length = 0;
  std::map<std::string, std::string> hashes;
  Json custom;  // null when absent
};

struct DelegatedRole {
  std::string name;
  std::vector<std::string> keyids;
  std::uint32_t threshold = 1;
  bool terminating = false;
  // Exactly one of these is set.
  std::optional<std::vector<std::string>> paths;
  std::optional<std::vector<std::string>> path_hash_prefixes;

  // Whether this role is trusted for `target_path` (per-segment glob patterns, where `*`
  // and `?` never cross `/`, or SHA-256 prefixes of the path).
  bool IsDelegatedPath(std::string_view target_path) const;
};

struct Delegations {
  std::map<std::string, Key> keys;
  std::vector<DelegatedRole> roles;  // in order of priority
};

// Fields common to every role.
struct Common {
  std::uint64_t version = 1;
  WallTime expires;
  std::string spec_version = std::string(kSpecVersion);
  Json unknown = Json::object();  // unrecognised fields of `signed`, kept when re-serialising
};

struct Root : Common {
  bool consistent_snapshot = true;
  std::map<std::string, Key> keys;
  std::map<std::string, RoleKeys> roles;  // "root", "timestamp", "snapshot", "targets"
};

struct Timestamp : Common {
  MetaFile snapshot_meta;  // meta["snapshot.json"]
};

struct Snapshot : Common {
  std::map<std::string, MetaFile> meta;  // "targets.json", "<role>.json"
};

struct Targets : Common {
  std::map<std::string, TargetFile> targets;
  std::optional<Delegations> delegations;
};

struct Signature {
  std::string keyid;
  std::string sig;  // hex
};

// A parsed metadata file. `canonical_signed` is the exact message signatures cover.
template <typename T>
struct Metadata {
  T signed_part;
  std::vector<Signature> signatures;
  Json signed_json;
  std::string canonical_signed;
};

// Parsers. kCorrupt names the file and field; kUnsupported for another spec major version.
Result<Metadata<Root>> ParseRoot(std::span<const std::uint8_t> bytes);
Result<Metadata<Timestamp>> ParseTimestamp(std::span<const std::uint8_t> bytes);
Result<Metadata<Snapshot>> ParseSnapshot(std::span<const std::uint8_t> bytes);
Result<Metadata<Targets>> ParseTargets(std::span<const std::uint8_t> bytes);

// Counts the distinct keys of `role` (from `keys`) with a valid signature over
// `canonical_signed`; ok when the count reaches the threshold, else kVerificationFailed
// "<what>: N of M required signatures".
Status VerifyThreshold(std::string_view what, const std::string& canonical_signed,
                       const std::vector<Signature>& signatures,
                       const std::map<std::string, Key>& keys,
                       const std::vector<std::string>& role_keyids, std::uint32_t threshold);

// Serialisation of the `signed` objects (canonicalise, sign, wrap in an envelope).
Json ToJson(const Root& root);
Json ToJson(const Timestamp& timestamp);
Json ToJson(const Snapshot& snapshot);
Json ToJson(const Targets& targets);
Json MetaFileToJson(const MetaFile& meta);
Json TargetFileToJson(const TargetFile& target);

// "2030-01-01T00:00:00Z" <-> WallTime (whole seconds, UTC).
Result<WallTime> ParseExpiry(const std::string& text);
std::string FormatExpiry(WallTime time);

// The largest root.json read anywhere: a trusted root from configuration, or a new one.
inline constexpr std::uint64_t kMaxRootBytes = 512000;

// Where a consistent-snapshot repository stores a target: "<dir>/<hash>.<name>" for
// "<dir>/<name>" (TUF 1.0, section 5.7.3).
std::string ConsistentTargetPath(std::string_view path, std::string_view hash);

// Whether `target_path` matches `pattern`, TUF style: split both on '/', the same number of
// segments, each segment matched by fnmatch-style `*`, `?`, `[...]` (case-sensitive).
bool MatchTargetPattern(std::string_view pattern, std::string_view target_path);

}  // namespace qp::tuf
