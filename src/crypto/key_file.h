// Private key files: PKCS#8 PEM, created exclusively with mode 0600 and fsynced, so that an
// offline key can be moved off the machine as one file. Key material never reaches a log.
#pragma once

#include <string>

#include "core/env.h"
#include "crypto/keys.h"

namespace qp::crypto {

// Writes `key` to a new file at `path` (mode 0600). kAlreadyExists if something is there:
// a key file is never overwritten.
Status WriteKeyFile(Env* env, const std::string& path, const SigningKey& key);

// Reads a key file. Refuses (kVerificationFailed) a file that group or others may read,
// naming the path and its mode, as ssh does.
Result<SigningKey> ReadKeyFile(Env* env, const std::string& path);

}  // namespace qp::crypto
