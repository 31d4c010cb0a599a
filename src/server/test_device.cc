#include "server/test_device.h"

#include <nlohmann/json.hpp>
#include <stdexcept>

namespace qp::server {

std::string ReportBody(const std::string& install_id, int seq, const std::string& state,
                       const std::string& label, const std::string& error) {
  using Json = nlohmann::json;
  return Json{{"install_id", install_id},
              {"agent_version", "0.1.0"},
              {"events", Json::array({Json{{"seq", seq},
                                           {"time", 1800000000 + seq},
                                           {"component", "comp"},
                                           {"platform", "linux-x86_64"},
                                           {"base", "1.0"},
                                           {"improvement", label},
                                           {"state", state},
                                           {"error", error},
                                           {"restart_needed", Json::array()}}})}}
      .dump();
}

TestDevice::TestDevice()
    : key_(crypto::SigningKey::Generate(crypto::Scheme::kEd25519).value()),
      id_(contract::DeviceIdOf(key_.Public()).value()),
      public_key_(key_.Public().public_value) {}

std::string TestDevice::EnrollBody(const std::string& token) const {
  return nlohmann::json{{"token", token}, {"public_key", public_key_}}.dump();
}

SignedRequest TestDevice::Request(std::string_view method, std::string_view target,
                                  const std::string& body, WallTime now) const {
  auto sig = contract::SignDeviceRequest(key_, id_, method, target, body, now,
                                         contract::NewNonce().value());
  if (!sig.ok()) throw std::runtime_error(sig.error().ToString());
  return SignedRequest{method, target, body, *sig};
}

std::vector<std::string> TestDevice::Sign(const std::string& method, const std::string& target,
                                          const std::string& body, WallTime now) const {
  return contract::SignatureHeaderLines(Request(method, target, body, now).signature);
}

}  // namespace qp::server
