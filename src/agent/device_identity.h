// This device's identity (contract/device_auth.h): an ed25519 key pair made at first
// start and kept in <state>/device.key (0600, never logged), and the install id derived
// from it (<state>/install_id, 0600, for people and tools to read). The key never leaves
// the device; the fleet learns its public half when the device enrolls.
#pragma once

#include <string>

#include "core/env.h"
#include "crypto/keys.h"

namespace qp::agent {

struct DeviceIdentity {
  crypto::SigningKey key;
  std::string install_id;
  std::string public_key;  // hex
};

// Loads the key, or makes one on first start. A key file others may read is refused
// (kVerificationFailed naming it), as ssh refuses one.
Result<DeviceIdentity> LoadOrCreateIdentity(Env* env, const std::string& state_dir);

}  // namespace qp::agent
