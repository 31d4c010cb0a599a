#include "agent/device_identity.h"

#include "contract/device_auth.h"
#include "core/durable_file.h"
#include "crypto/key_file.h"

namespace qp::agent {

Result<DeviceIdentity> LoadOrCreateIdentity(Env* env, const std::string& state_dir) {
  const std::string key_path = JoinPath(state_dir, "device.key");
  if (!env->Stat(key_path).ok()) {
    QP_ASSIGN_OR_RETURN(auto fresh, crypto::SigningKey::Generate(crypto::Scheme::kEd25519));
    QP_RETURN_IF_ERROR(crypto::WriteKeyFile(env, key_path, fresh));
  }
  QP_ASSIGN_OR_RETURN(auto key, crypto::ReadKeyFile(env, key_path));
  if (key.scheme() != crypto::Scheme::kEd25519) {
    return Error(ErrorCode::kUnsupported, key_path + ": a device key is ed25519");
  }
  QP_ASSIGN_OR_RETURN(std::string id, contract::DeviceIdOf(key.Public()));
  std::string public_key = key.Public().public_value;
  // Derived, so rewriting it is harmless; 0600 like everything that identifies the device.
  QP_RETURN_IF_ERROR(WriteFileDurably(env, JoinPath(state_dir, "install_id"), id + "\n", 0600));
  return DeviceIdentity{std::move(key), std::move(id), std::move(public_key)};
}

}  // namespace qp::agent
