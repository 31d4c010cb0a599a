// The TUF client workflow (specification section 5) over a Fetcher, a Clock and a metadata
// directory: refresh of the top-level metadata, target lookup through delegations, and
// verified target download. Every verified step is persisted (durably, under non-versioned
// names, byte-identical to what was served) before the next step can fail, so a failed
// update leaves the client able to update next time. Not thread-safe; one Updater per
// update.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "core/clock.h"
#include "core/env.h"
#include "tuf/fetcher.h"
#include "tuf/trusted_metadata.h"

namespace qp::tuf {

struct UpdaterConfig {
  std::string metadata_dir;     // holds root.json (trusted) and what refresh verified
  std::string metadata_url;     // base URL of the metadata ('/' appended when missing)
  std::string target_base_url;  // base URL of the targets ('/' appended when missing)
  std::uint32_t max_root_rotations = 256;
  std::uint32_t max_delegations = 32;  // roles visited per target lookup
  // Absolute caps per kind of download. A length the signed metadata gives only lowers
  // them; a larger one is refused (kTooLarge) before anything is fetched.
  std::uint64_t root_max_length = kMaxRootBytes;
  std::uint64_t timestamp_max_length = 16384;
  std::uint64_t snapshot_max_length = 2000000;
  std::uint64_t targets_max_length = 5000000;
  std::uint64_t target_max_length = 64 << 20;  // a target fetched into memory
};

struct TargetInfo {
  std::string path;
  TargetFile file;
  std::string role;  // the targets role that listed it
};

class Updater {
 public:
  Updater(UpdaterConfig config, Env* env, Fetcher* fetcher, Clock* clock);

  // Runs the whole top-level workflow: root chain, timestamp, snapshot, targets. The
  // update start time is read once, here.
  Status Refresh();

  // Searches the delegation graph for `target_path` (pre-order depth-first, each role at
  // most once, up to max_delegations roles). nullopt when no trusted role lists it. Runs
  // Refresh() first if it has not run.
  Result<std::optional<TargetInfo>> GetTargetInfo(const std::string& target_path);

  // Every target listed by the delegated role `role` that a lookup resolves to that role
  // (its path is delegated to it, and no role searched before it claims the path). The
  // role is found by searching the delegation graph from the top-level targets.
  Result<std::vector<TargetInfo>> ListRoleTargets(const std::string& role);

  // Whether `file_path` already holds the target (length and every hash match).
  bool IsDownloaded(const TargetInfo& target, const std::string& file_path);

  // Downloads the target (at most its length), checks length and every hash, then
  // atomically writes `file_path`. Nothing is written when any check fails.
  Status DownloadTarget(const TargetInfo& target, const std::string& file_path);

  // Downloads a small target into memory (at most its length) and checks length and
  // every hash.
  Result<std::vector<std::uint8_t>> FetchTarget(const TargetInfo& target);
  // The cap for a download of `what`: `configured`, or the signed length when it is lower;
  // kTooLarge when the signed length is higher.
  static Result<std::uint64_t> DownloadCap(const std::string& what,
                                           std::optional<std::uint64_t> signed_length,
                                           std::uint64_t configured);

  // The URL the target is fetched from (consistent snapshots: dir/HASH.name).
  std::string TargetUrl(const TargetInfo& target) const;

  const TrustedMetadata* trusted() const { return trusted_ ? &*trusted_ : nullptr; }

 private:
  Status LoadRoot();
  Status LoadTimestamp();
  Status LoadSnapshot();
  Result<const Targets*> LoadTargets(const std::string& role, const std::string& delegator);

  std::string MetadataUrl(const std::string& role, std::optional<std::uint64_t> version) const;
  std::string LocalPath(const std::string& role) const;
  Result<std::vector<std::uint8_t>> ReadLocal(const std::string& role, std::uint64_t max);
  Status Persist(const std::string& role, const std::vector<std::uint8_t>& bytes);
  void DropLocal(const std::string& role);

  UpdaterConfig config_;
  Env* env_;
  Fetcher* fetcher_;
  Clock* clock_;
  std::optional<TrustedMetadata> trusted_;
};

}  // namespace qp::tuf
