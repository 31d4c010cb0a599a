// Test helper: a device as the fleet service sees it, with its own key, signing its
// requests exactly as quietpatchd does (contract/device_auth.h).
#pragma once

#include <string>
#include <vector>

#include "core/clock.h"
#include "crypto/keys.h"
#include "server/device_gate.h"

namespace qp::server {

class TestDevice {
 public:
  TestDevice();
  const std::string& id() const { return id_; }
  const std::string& public_key() const { return public_key_; }

  // The body of POST /v1/enroll with `token`.
  std::string EnrollBody(const std::string& token) const;
  // Header lines ("QP-Device: ...") signing the request at `now`.
  std::vector<std::string> Sign(const std::string& method, const std::string& target,
                                const std::string& body, WallTime now = Clock::Real()->Now()) const;
  // The same request as the server's handlers take it (views into the arguments).
  // `method` and `target` are literals or outlive the request, as `body` must.
  SignedRequest Request(std::string_view method, std::string_view target, const std::string& body,
                        WallTime now = Clock::Real()->Now()) const;

 private:
  crypto::SigningKey key_;
  std::string id_, public_key_;
};

// A report of one event about improvement comp/1.0/<label> (linux-x86_64), as an agent
// sends it.
std::string ReportBody(const std::string& install_id, int seq, const std::string& state,
                       const std::string& label = "a", const std::string& error = "");

}  // namespace qp::server
