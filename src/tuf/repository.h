// Writing a TUF repository: all roles, thresholds and multiple keys, version bumps, expiry,
// targets and delegations, root rotation (version N+1 signed by the old and the new keys),
// consistent snapshots. The result is a set of files (relative names under `metadata/` and
// `targets/`) that any static web server can serve; the publisher tool writes them to disk,
// the tests serve them from memory. Pure (no file system, no clock: times are passed in).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "core/clock.h"
#include "crypto/keys.h"
#include "tuf/metadata.h"

namespace qp::tuf {

using SigningKeyPtr = std::shared_ptr<const crypto::SigningKey>;

// The keyid of a public key: SHA-256 of the canonical key object.
std::string KeyIdOf(const crypto::PublicKeyDescription& key);

class RepositoryWriter {
 public:
  // Empty version-1 metadata for the four top-level roles, with expiries of 365 days
  // (root), 90 (targets), 7 (snapshot) and 1 (timestamp) after `now`.
  RepositoryWriter(WallTime now, bool consistent_snapshot = true);

  // Continues an existing repository: `read` returns the content of a file under
  // metadata/ ("root.json", "timestamp.json", "3.snapshot.json", ...). The newest root,
  // timestamp, snapshot and every targets role the snapshot lists are loaded (and must
  // parse); files() starts empty, so afterwards it holds only what changed.
  static Result<RepositoryWriter> Load(
      WallTime now,
      const std::function<Result<std::vector<std::uint8_t>>(const std::string&)>& read);

  void set_now(WallTime now) { now_ = now; }
  WallTime now() const { return now_; }

  Root& root() { return root_; }
  const Root& root() const { return root_; }
  Timestamp& timestamp() { return timestamp_; }
  Snapshot& snapshot() { return snapshot_; }
  // "targets" or a delegated role. The role must exist (see AddDelegation).
  Targets& targets(const std::string& role = "targets") { return targets_.at(role); }
  const Targets& targets(const std::string& role = "targets") const { return targets_.at(role); }
  bool HasTargetsRole(const std::string& role) const { return targets_.count(role) != 0; }
  std::vector<std::string> TargetsRoles() const;

  // Signing keys used when signing `role` (root, timestamp, snapshot, targets, or a
  // delegated role). Keys not listed for the role still sign (a rotation needs the old ones).
  void AddSigner(const std::string& role, SigningKeyPtr key);
  void RemoveSigner(const std::string& role, const std::string& keyid);
  bool HasSigner(const std::string& role, const std::string& keyid) const;

  // Lists the key for top-level `role` in root; returns its keyid.
  std::string AddRootRoleKey(const std::string& role, const crypto::PublicKeyDescription& key);
  void RemoveRootRoleKey(const std::string& role, const std::string& keyid);

  // Adds `role` (its keyids may be empty) to `delegator`'s delegations, creating empty
  // version-1 metadata for it (expiry as targets).
  void AddDelegation(const std::string& delegator, DelegatedRole role);
  // Lists `key` for delegated `role` in `delegator`; returns its keyid.
  std::string AddDelegatedKey(const std::string& delegator, const std::string& role,
                              const crypto::PublicKeyDescription& key);

  // Lists a target in `role` (length, sha256 and sha512 of `content`, `custom` when not
  // null) and stores its content under targets/.
  void AddTarget(const std::string& role, const std::string& path,
                 std::span<const std::uint8_t> content, const Json& custom = Json());

  // Signs the current content of `role` with its signers and returns the file as served.
  Result<std::vector<std::uint8_t>> Sign(const std::string& role) const;

  // Publishing. Each bumps the role's version if it was published before, signs it and
  // stores it under its file name(s). PublishTargets also records the new version in the
  // snapshot; PublishSnapshot records length and hashes in the timestamp.
  Status PublishRoot();
  Status PublishTargets(const std::string& role = "targets");
  Status PublishSnapshot();
  Status PublishTimestamp();
  // Targets roles changed since the last snapshot, then snapshot, then timestamp.
  Status PublishAll();

  // Relative path -> content of every file written so far ("metadata/2.root.json",
  // "metadata/timestamp.json", "targets/dir/<sha256>.name", ...).
  const std::map<std::string, std::vector<std::uint8_t>>& files() const { return files_; }
  std::map<std::string, std::vector<std::uint8_t>>& mutable_files() { return files_; }

  // The file name of a role's metadata at `version` under metadata/.
  std::string MetadataFileName(const std::string& role, std::uint64_t version) const;

 private:
  Result<std::vector<std::uint8_t>> SignJson(const std::string& role,
                                             const Json& signed_json) const;
  Common& CommonOf(const std::string& role);
  void BumpIfPublished(const std::string& role);

  Root root_;
  Timestamp timestamp_;
  Snapshot snapshot_;
  std::map<std::string, Targets> targets_;
  std::map<std::string, std::map<std::string, SigningKeyPtr>> signers_;  // role -> keyid -> key
  std::set<std::string> published_;
  std::set<std::string> dirty_targets_;
  std::map<std::string, std::vector<std::uint8_t>> files_;
  WallTime now_;
};

}  // namespace qp::tuf
