#include "tuf/trusted_metadata.h"

#include "core/hash.h"

namespace qp::tuf {
namespace {

Status CheckNotExpired(const Common& c, WallTime reference_time, const std::string& what) {
  if (reference_time >= c.expires) {
    return Error(ErrorCode::kVerificationFailed, what + " version " + std::to_string(c.version) +
                                                     " expired at " + FormatExpiry(c.expires));
  }
  return OkStatus();
}

template <typename T>
Status VerifyRole(const Metadata<T>& md, const Root& root, const std::string& role,
                  const std::string& what) {
  const auto& rk = root.roles.at(role);
  return VerifyThreshold(what, md.canonical_signed, md.signatures, root.keys, rk.keyids,
                         rk.threshold);
}

std::string V(std::uint64_t v) { return std::to_string(v); }

}  // namespace

namespace {

// One hasher per listed hash, fed in one pass over the data, then compared in constant time.
class ListedHashes {
 public:
  static Result<ListedHashes> Start(const std::map<std::string, std::string>& hashes,
                                    const std::string& what) {
    ListedHashes out;
    for (const auto& [algorithm, expected] : hashes) {
      HashAlgorithm a;
      if (algorithm == "sha256") {
        a = HashAlgorithm::kSha256;
      } else if (algorithm == "sha512") {
        a = HashAlgorithm::kSha512;
      } else {
        return Error(ErrorCode::kUnsupported, what + ": unsupported hash algorithm " + algorithm);
      }
      out.listed_.push_back({algorithm, expected, std::make_unique<Hasher>(a)});
    }
    return out;
  }
  void Update(std::span<const std::uint8_t> data) {
    for (auto& l : listed_) l.hasher->Update(data);
  }
  Status Finish(const std::string& what) {
    for (auto& l : listed_) {
      std::vector<std::uint8_t> actual = l.hasher->Finish();
      auto expected = HexDecode(l.expected);
      if (!expected.ok() || !ConstantTimeEquals(*expected, actual)) {
        return Error(ErrorCode::kVerificationFailed,
                     what + ": " + l.algorithm + " does not match the signed hash");
      }
    }
    return OkStatus();
  }

 private:
  struct Listed {
    std::string algorithm, expected;
    std::unique_ptr<Hasher> hasher;
  };
  std::vector<Listed> listed_;
};

Status CheckLength(std::uint64_t size, std::optional<std::uint64_t> length,
                   const std::string& what) {
  if (length && size != *length) {
    return Error(ErrorCode::kVerificationFailed,
                 what + ": length " + V(size) + ", signed length " + V(*length));
  }
  return OkStatus();
}

}  // namespace

Status VerifyLengthAndHashes(std::span<const std::uint8_t> bytes,
                             std::optional<std::uint64_t> length,
                             const std::map<std::string, std::string>& hashes,
                             const std::string& what) {
  QP_RETURN_IF_ERROR(CheckLength(bytes.size(), length, what));
  QP_ASSIGN_OR_RETURN(ListedHashes listed, ListedHashes::Start(hashes, what));
  listed.Update(bytes);
  return listed.Finish(what);
}

Status VerifyFileLengthAndHashes(RandomAccessFile& file, std::optional<std::uint64_t> length,
                                 const std::map<std::string, std::string>& hashes,
                                 const std::string& what) {
  QP_RETURN_IF_ERROR(CheckLength(file.Size(), length, what));
  QP_ASSIGN_OR_RETURN(ListedHashes listed, ListedHashes::Start(hashes, what));
  std::vector<std::uint8_t> buf(1 << 20);
  for (std::uint64_t offset = 0;;) {
    QP_ASSIGN_OR_RETURN(std::size_t n, file.ReadAt(offset, buf));
    if (n == 0) break;
    listed.Update(std::span(buf.data(), n));
    offset += n;
  }
  return listed.Finish(what);
}

Result<TrustedMetadata> TrustedMetadata::Create(std::span<const std::uint8_t> root_bytes,
                                                WallTime reference_time) {
  auto root = ParseRoot(root_bytes);
  if (!root.ok()) return root.error().WithContext("trusted root");
  QP_RETURN_IF_ERROR(VerifyRole(*root, root->signed_part, "root", "trusted root"));
  return TrustedMetadata(std::move(root).value(), reference_time);
}

Status TrustedMetadata::UpdateRoot(std::span<const std::uint8_t> bytes) {
  if (timestamp_) {
    return Error(ErrorCode::kInternal, "root cannot change after the timestamp is loaded");
  }
  auto next = ParseRoot(bytes);
  std::string what = "root version " + V(root().version + 1);
  if (!next.ok()) return next.error().WithContext(what);
  // Signed by the root keys we trust now, and by the new root's own keys.
  QP_RETURN_IF_ERROR(VerifyRole(*next, root(), "root", what + " (by the trusted root's keys)"));
  if (next->signed_part.version != root().version + 1) {
    return Error(ErrorCode::kVerificationFailed,
                 what + ": file claims version " + V(next->signed_part.version));
  }
  QP_RETURN_IF_ERROR(VerifyRole(*next, next->signed_part, "root", what + " (by its own keys)"));
  root_ = std::move(next).value();
  return OkStatus();
}

Status TrustedMetadata::CheckRootNotExpired() const {
  return CheckNotExpired(root(), reference_time_, "root");
}

Result<bool> TrustedMetadata::UpdateTimestamp(std::span<const std::uint8_t> bytes) {
  if (snapshot_) {
    return Error(ErrorCode::kInternal, "timestamp cannot change after the snapshot is loaded");
  }
  QP_RETURN_IF_ERROR(CheckRootNotExpired());
  auto next = ParseTimestamp(bytes);
  if (!next.ok()) return next.error().WithContext("timestamp");
  QP_RETURN_IF_ERROR(VerifyRole(*next, root(), "timestamp", "timestamp"));
  const Timestamp& n = next->signed_part;
  if (timestamp_) {
    const Timestamp& old = timestamp_->signed_part;
    if (n.version < old.version) {
      return Error(ErrorCode::kVerificationFailed, "timestamp rollback: version " + V(n.version) +
                                                       " is older than trusted " + V(old.version));
    }
    if (n.version == old.version) return false;
    if (n.snapshot_meta.version < old.snapshot_meta.version) {
      return Error(ErrorCode::kVerificationFailed,
                   "snapshot rollback: timestamp lists snapshot version " +
                       V(n.snapshot_meta.version) + ", older than trusted " +
                       V(old.snapshot_meta.version));
    }
  }
  timestamp_ = std::move(next).value();
  QP_RETURN_IF_ERROR(CheckTimestampFinal());
  return true;
}

Status TrustedMetadata::CheckTimestampFinal() const {
  return CheckNotExpired(timestamp_->signed_part, reference_time_, "timestamp");
}

Status TrustedMetadata::UpdateSnapshot(std::span<const std::uint8_t> bytes, bool from_local_cache) {
  if (!timestamp_) return Error(ErrorCode::kInternal, "snapshot needs a trusted timestamp");
  if (targets_.count("targets") != 0) {
    return Error(ErrorCode::kInternal, "snapshot cannot change after targets is loaded");
  }
  QP_RETURN_IF_ERROR(CheckTimestampFinal());
  const MetaFile& listed = timestamp_->signed_part.snapshot_meta;
  if (!from_local_cache) {
    QP_RETURN_IF_ERROR(VerifyLengthAndHashes(bytes, listed.length, listed.hashes, "snapshot"));
  }
  auto next = ParseSnapshot(bytes);
  if (!next.ok()) return next.error().WithContext("snapshot");
  QP_RETURN_IF_ERROR(VerifyRole(*next, root(), "snapshot", "snapshot"));
  if (snapshot_) {
    // No targets role may disappear or go back in version.
    for (const auto& [name, old_meta] : snapshot_->signed_part.meta) {
      auto it = next->signed_part.meta.find(name);
      if (it == next->signed_part.meta.end()) {
        return Error(ErrorCode::kVerificationFailed, "snapshot rollback: " + name + " is missing");
      }
      if (it->second.version < old_meta.version) {
        return Error(ErrorCode::kVerificationFailed,
                     "snapshot rollback: " + name + " version " + V(it->second.version) +
                         " is older than trusted " + V(old_meta.version));
      }
    }
  }
  snapshot_ = std::move(next).value();
  return CheckSnapshotFinal();
}

Status TrustedMetadata::CheckSnapshotFinal() const {
  QP_RETURN_IF_ERROR(CheckNotExpired(snapshot_->signed_part, reference_time_, "snapshot"));
  std::uint64_t expected = timestamp_->signed_part.snapshot_meta.version;
  if (snapshot_->signed_part.version != expected) {
    return Error(ErrorCode::kVerificationFailed,
                 "snapshot version " + V(snapshot_->signed_part.version) +
                     " differs from the version " + V(expected) + " that timestamp lists");
  }
  return OkStatus();
}

Status TrustedMetadata::VerifyDelegate(const Metadata<Targets>& md, const std::string& role,
                                       const std::string& delegator) const {
  if (delegator == "root") {
    return VerifyRole(md, root(), "targets", "targets");
  }
  auto it = targets_.find(delegator);
  if (it == targets_.end()) {
    return Error(ErrorCode::kInternal,
                 "delegator " + delegator + " of " + role + " is not trusted");
  }
  const auto& delegations = it->second.metadata.signed_part.delegations;
  if (delegations) {
    for (const auto& r : delegations->roles) {
      if (r.name != role) continue;
      return VerifyThreshold(role + " (delegated by " + delegator + ")", md.canonical_signed,
                             md.signatures, delegations->keys, r.keyids, r.threshold);
    }
  }
  return Error(ErrorCode::kVerificationFailed, delegator + " does not delegate to " + role);
}

Status TrustedMetadata::UpdateTargets(std::span<const std::uint8_t> bytes, const std::string& role,
                                      const std::string& delegator) {
  if (!snapshot_) return Error(ErrorCode::kInternal, role + " needs a trusted snapshot");
  QP_RETURN_IF_ERROR(CheckSnapshotFinal());
  auto listed = snapshot_->signed_part.meta.find(role + ".json");
  if (listed == snapshot_->signed_part.meta.end()) {
    return Error(ErrorCode::kVerificationFailed, role + " is not listed in snapshot");
  }
  QP_RETURN_IF_ERROR(
      VerifyLengthAndHashes(bytes, listed->second.length, listed->second.hashes, role));
  auto next = ParseTargets(bytes);
  if (!next.ok()) return next.error().WithContext(role);
  QP_RETURN_IF_ERROR(VerifyDelegate(*next, role, delegator));
  if (next->signed_part.version != listed->second.version) {
    return Error(ErrorCode::kVerificationFailed,
                 role + " version " + V(next->signed_part.version) + " differs from the version " +
                     V(listed->second.version) + " that snapshot lists");
  }
  QP_RETURN_IF_ERROR(CheckNotExpired(next->signed_part, reference_time_, role));
  targets_.insert_or_assign(role, TrustedTargets{std::move(next).value(), delegator});
  return OkStatus();
}

const Targets* TrustedMetadata::FindTargets(const std::string& role, const std::string& delegator) {
  auto it = targets_.find(role);
  if (it == targets_.end()) return nullptr;
  if (it->second.delegator != delegator) {
    // Trusted through another delegator earlier: it must also satisfy this one's keys.
    if (!VerifyDelegate(it->second.metadata, role, delegator).ok()) {
      targets_.erase(it);
      return nullptr;
    }
    it->second.delegator = delegator;
  }
  return &it->second.metadata.signed_part;
}

}  // namespace qp::tuf
