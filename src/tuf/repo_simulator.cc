#include "tuf/repo_simulator.h"

#include <cstdlib>
#include <string_view>

namespace qp::tuf {

RepoSimulator::RepoSimulator(WallTime now, bool consistent_snapshot, crypto::Scheme scheme)
    : writer_(now, consistent_snapshot), scheme_(scheme) {
  for (const char* role : {"root", "timestamp", "snapshot", "targets"}) AddKey(role, "", scheme);
  if (!writer_.PublishRoot().ok() || !writer_.PublishAll().ok()) std::abort();
  initial_root_ = writer_.files().at("metadata/1.root.json");
}

std::string RepoSimulator::AddKey(const std::string& role, const std::string& delegator,
                                  crypto::Scheme scheme) {
  auto key = crypto::SigningKey::Generate(scheme);
  if (!key.ok()) std::abort();
  auto shared = std::make_shared<const crypto::SigningKey>(std::move(key).value());
  std::string id = delegator.empty() ? writer_.AddRootRoleKey(role, shared->Public())
                                     : writer_.AddDelegatedKey(delegator, role, shared->Public());
  writer_.AddSigner(role, shared);
  keys[id] = shared;
  return id;
}

void RepoSimulator::Delegate(const std::string& delegator, DelegatedRole role) {
  std::string name = role.name;
  writer_.AddDelegation(delegator, std::move(role));
  AddKey(name, delegator, scheme_);
}

Result<std::vector<std::uint8_t>> RepoSimulator::Fetch(const std::string& url,
                                                       std::uint64_t max_length) {
  std::string_view u(url);
  std::string path;
  if (u.substr(0, std::string_view(kMetadataUrl).size()) == kMetadataUrl) {
    std::string name(u.substr(std::string_view(kMetadataUrl).size()));
    metadata_requests.push_back(name);
    path = "metadata/" + name;
  } else if (u.substr(0, std::string_view(kTargetsUrl).size()) == kTargetsUrl) {
    std::string name(u.substr(std::string_view(kTargetsUrl).size()));
    target_requests.push_back(name);
    path = "targets/" + name;
  } else {
    return Error(ErrorCode::kIo, "unknown host in " + url);
  }
  auto it = files().find(path);
  if (it == files().end()) return Error(ErrorCode::kNotFound, "404 " + url);
  if (it->second.size() > max_length) {
    return Error(ErrorCode::kTooLarge,
                 url + ": more than " + std::to_string(max_length) + " bytes");
  }
  return it->second;
}

}  // namespace qp::tuf
