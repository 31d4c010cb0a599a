#include "crypto/key_file.h"

#include <openssl/crypto.h>

#include <cstdio>

#include "core/durable_file.h"

namespace qp::crypto {

Status WriteKeyFile(Env* env, const std::string& path, const SigningKey& key) {
  std::string pem = key.ToPem();
  if (pem.empty()) return Error(ErrorCode::kInternal, "cannot encode private key");
  std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(pem.data()),
                                      pem.size());
  Status s = CreateFileExclusively(env, path, bytes, 0600);
  // The PEM lives on the heap of this function only; wipe it before freeing.
  OPENSSL_cleanse(pem.data(), pem.size());
  if (!s.ok()) return s.error().WithContext("key file " + path);
  return OkStatus();
}

Result<SigningKey> ReadKeyFile(Env* env, const std::string& path) {
  QP_ASSIGN_OR_RETURN(FileInfo info, env->Stat(path));
  if ((info.mode & 077) != 0) {
    char mode[16];
    std::snprintf(mode, sizeof(mode), "%04o", info.mode);
    return Error(ErrorCode::kVerificationFailed,
                 "key file " + path + " has mode " + mode + "; it must be 0600 (chmod 600 it)");
  }
  auto bytes = ReadFileLimited(env, path, 16 * 1024);
  if (!bytes.ok()) return bytes.error().WithContext("key file " + path);
  std::string_view pem(reinterpret_cast<const char*>(bytes->data()), bytes->size());
  auto key = SigningKey::FromPem(pem);
  OPENSSL_cleanse(bytes->data(), bytes->size());
  if (!key.ok()) return key.error().WithContext("key file " + path);
  return key;
}

}  // namespace qp::crypto
