// Test helper: a TUF repository served from memory through the Fetcher interface, in the
// style of python-tuf's RepositorySimulator. Every request is logged; any file can be
// replaced to play an attacker. Each top-level role starts with one ed25519 key.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/clock.h"
#include "tuf/fetcher.h"
#include "tuf/repository.h"

namespace qp::tuf {

class RepoSimulator : public Fetcher {
 public:
  static constexpr const char* kMetadataUrl = "https://repo.test/metadata/";
  static constexpr const char* kTargetsUrl = "https://repo.test/targets/";

  explicit RepoSimulator(WallTime now, bool consistent_snapshot = true,
                         crypto::Scheme scheme = crypto::Scheme::kEd25519);

  Result<std::vector<std::uint8_t>> Fetch(const std::string& url,
                                          std::uint64_t max_length) override;

  // A new key for `role` (top-level: listed in root; delegated: in its delegator), signing
  // from now on. Returns the keyid.
  std::string AddKey(const std::string& role, const std::string& delegator = "",
                     crypto::Scheme scheme = crypto::Scheme::kEd25519);
  // Adds a delegation from `delegator` to a new role with one fresh key.
  void Delegate(const std::string& delegator, DelegatedRole role);

  // The bytes of version 1 of root, which clients start from.
  const std::vector<std::uint8_t>& initial_root() const { return initial_root_; }
  RepositoryWriter& writer() { return writer_; }
  std::map<std::string, std::vector<std::uint8_t>>& files() { return writer_.mutable_files(); }
  // Metadata file names requested so far ("2.root.json", "timestamp.json", ...).
  std::vector<std::string> metadata_requests;
  std::vector<std::string> target_requests;
  std::map<std::string, SigningKeyPtr> keys;  // keyid -> key, every key ever made

 private:
  RepositoryWriter writer_;
  std::vector<std::uint8_t> initial_root_;
  crypto::Scheme scheme_;
};

}  // namespace qp::tuf
