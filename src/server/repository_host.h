// Who changes the repository directory an instance serves, and how a change reaches the
// devices. One instance alone (LocalRepositoryHost): it changes its own directory, one
// change at a time. Several instances on PostgreSQL (shared_repository.h): only the signer
// changes it, on a copy it pulled, and pushes the change to the database, from which every
// instance pulls; the others hand their rollout requests to the signer.
#pragma once

#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "core/result.h"

namespace qp::server {

// What the signer answered to a forwarded request (HTTP status and JSON body).
struct ForwardedAnswer {
  int status = 503;
  std::string body;
};

class RepositoryHost {
 public:
  virtual ~RepositoryHost() = default;
  // Whether this instance may change the repository now.
  virtual bool MaySign() const = 0;
  // Runs `change`, which writes the repository directory, as its one writer, and publishes
  // what it wrote. kFailedPrecondition when this instance may not sign.
  virtual Status Change(const std::function<Status()>& change) = 0;
  // From an instance that may not sign: hands an operator's rollout request (already
  // authorised) to the one that may, and waits for its answer. nullopt when there is no
  // one else to ask (one instance).
  virtual std::optional<ForwardedAnswer> Forward(const std::string& body,
                                                 const std::string& peer) = 0;
};

// One instance: its own directory, a mutex, no one to forward to.
class LocalRepositoryHost final : public RepositoryHost {
 public:
  bool MaySign() const override { return true; }
  Status Change(const std::function<Status()>& change) override {
    std::lock_guard<std::mutex> lock(mu_);
    return change();
  }
  std::optional<ForwardedAnswer> Forward(const std::string&, const std::string&) override {
    return std::nullopt;
  }

 private:
  std::mutex mu_;
};

}  // namespace qp::server
