// The trusted-metadata state machine of the TUF client workflow (specification section 5):
// which metadata the client trusts right now, and the checks each new piece of metadata
// must pass to join it. Pure: bytes in, decisions out; the Updater does the fetching and
// persisting. Thread-compatible.
//
// Order: Create (trusted root) -> UpdateRoot* -> UpdateTimestamp -> UpdateSnapshot ->
// UpdateTargets("targets") -> UpdateTargets(delegated)*. Metadata that verified but then
// failed a "final" check (expired, version mismatch) is still held as the intermediate
// reference for rollback checks, exactly as the specification orders, yet the update fails.
#pragma once

#include <map>
#include <optional>
#include <span>
#include <string>

#include "core/clock.h"
#include "core/env.h"
#include "core/result.h"
#include "tuf/metadata.h"

namespace qp::tuf {

class TrustedMetadata {
 public:
  // Trusts `root_bytes` if it is signed by a threshold of its own root keys (expiry is
  // checked later, after the root update loop). `reference_time` is the update start time,
  // fixed once for the whole update.
  static Result<TrustedMetadata> Create(std::span<const std::uint8_t> root_bytes,
                                        WallTime reference_time);

  // Accepts root version N+1 signed by thresholds of both the trusted root and itself.
  // Fails once a timestamp has been loaded.
  Status UpdateRoot(std::span<const std::uint8_t> bytes);
  // kVerificationFailed "root expired" when the final root is expired.
  Status CheckRootNotExpired() const;

  // Returns true when the new timestamp replaced the trusted one, false when it has the
  // same version (the trusted one is kept, no error). Fails on rollback of the timestamp or
  // of the snapshot version it lists, bad signatures, or expiry.
  Result<bool> UpdateTimestamp(std::span<const std::uint8_t> bytes);

  // `from_local_cache`: the bytes were read from the client's own store, so timestamp's
  // length/hashes (which describe the newest snapshot) are not applied; signatures are.
  Status UpdateSnapshot(std::span<const std::uint8_t> bytes, bool from_local_cache);

  // Top-level targets (delegator "root") or a delegated role (delegator = the targets role
  // that delegates to it on the current search path, which must be trusted already).
  Status UpdateTargets(std::span<const std::uint8_t> bytes, const std::string& role,
                       const std::string& delegator);

  // The trusted targets role `role`, re-verified against `delegator` if it was first
  // trusted through another delegator; nullptr when it is not trusted (or fails that check,
  // in which case it is dropped so that the caller loads it afresh).
  const Targets* FindTargets(const std::string& role, const std::string& delegator);

  const Root& root() const { return root_.signed_part; }
  const Timestamp* timestamp() const { return timestamp_ ? &timestamp_->signed_part : nullptr; }
  const Snapshot* snapshot() const { return snapshot_ ? &snapshot_->signed_part : nullptr; }
  WallTime reference_time() const { return reference_time_; }

 private:
  struct TrustedTargets {
    Metadata<Targets> metadata;
    std::string delegator;
  };

  TrustedMetadata(Metadata<Root> root, WallTime reference_time)
      : root_(std::move(root)), reference_time_(reference_time) {}

  Status CheckTimestampFinal() const;
  Status CheckSnapshotFinal() const;
  // Verifies `md` as role `role` delegated by `delegator` (whose metadata is trusted).
  Status VerifyDelegate(const Metadata<Targets>& md, const std::string& role,
                        const std::string& delegator) const;

  Metadata<Root> root_;
  WallTime reference_time_;
  std::optional<Metadata<Timestamp>> timestamp_;
  std::optional<Metadata<Snapshot>> snapshot_;
  std::map<std::string, TrustedTargets> targets_;
};

// Ok when `bytes` has the listed length and every listed hash (sha256, sha512). An unknown
// hash algorithm fails: the data cannot be shown to be what was signed.
Status VerifyLengthAndHashes(std::span<const std::uint8_t> bytes,
                             std::optional<std::uint64_t> length,
                             const std::map<std::string, std::string>& hashes,
                             const std::string& what);
// The same check over a file, read once in chunks (a downloaded target).
Status VerifyFileLengthAndHashes(RandomAccessFile& file, std::optional<std::uint64_t> length,
                                 const std::map<std::string, std::string>& hashes,
                                 const std::string& what);

}  // namespace qp::tuf
