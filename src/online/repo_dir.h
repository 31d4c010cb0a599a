// A repository directory (the static files: metadata/ and targets/) and a keys directory
// (one 0600 PKCS#8 file per key: root-1.key, targets.key, improvements.key, rollout.key,
// snapshot.key, timestamp.key; rotated-out keys move to retired/). Changes are prepared in
// memory, verified with the project's own TUF client as a device would see them, and only
// then written: new versioned files first, timestamp.json last, each one atomically.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/env.h"
#include "crypto/keys.h"
#include "tuf/repository.h"
#include "tuf/updater.h"

namespace qp::online {

// The largest metadata file read from a repository directory.
inline constexpr std::uint64_t kMaxMetadataBytes = 64 << 20;

struct RepoPaths {
  std::string repo_dir;
  std::string keys_dir;
};

// A fetcher over a repository directory plus files not yet written (the pending changes),
// with URLs "repo:/metadata/..." and "repo:/targets/...".
class RepoDirFetcher final : public tuf::Fetcher {
 public:
  static constexpr const char* kMetadataUrl = "repo:/metadata/";
  static constexpr const char* kTargetsUrl = "repo:/targets/";
  RepoDirFetcher(Env* env, std::string repo_dir,
                 const std::map<std::string, std::vector<std::uint8_t>>* pending)
      : env_(env), repo_dir_(std::move(repo_dir)), pending_(pending) {}
  Result<std::vector<std::uint8_t>> Fetch(const std::string& url,
                                          std::uint64_t max_length) override;

 private:
  Env* env_;
  std::string repo_dir_;
  const std::map<std::string, std::vector<std::uint8_t>>* pending_;
};

// Loads the repository's newest metadata into a writer.
Result<tuf::RepositoryWriter> LoadRepository(Env* env, const RepoPaths& paths, WallTime now);

// Adds the signers for `role` found in the keys directory (role.key, role-N.key); returns
// how many were found.
Result<int> LoadSigners(Env* env, const RepoPaths& paths, const std::string& role,
                        tuf::RepositoryWriter* writer);

// kVerificationFailed "<command> needs the <role> key (<keys>/<role>.key)" unless the
// writer holds enough signing keys listed for `role` to meet its threshold.
Status RequireKeys(Env* env, const RepoPaths& paths, tuf::RepositoryWriter* writer,
                   const std::string& role, const std::string& command);

// Checks the pending files as a fresh device would (from `trusted_root`): every role
// verifies, every improvement and rollout.json downloads and matches its hashes.
Status VerifyAsDevice(Env* env, const std::string& repo_dir,
                      const std::map<std::string, std::vector<std::uint8_t>>& pending,
                      const std::vector<std::uint8_t>& trusted_root, Clock* clock,
                      std::vector<tuf::TargetInfo>* improvements = nullptr);

// Verifies, then writes the writer's files into the repository: targets, then metadata
// in version order, timestamp.json last. Nothing is written when verification fails.
Status CommitChanges(Env* env, const RepoPaths& paths, const tuf::RepositoryWriter& writer,
                     Clock* clock);

}  // namespace qp::online
