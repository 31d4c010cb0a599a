// How a device proves who it is to the fleet service (docs/threat-model.md, "Device
// identity"). Every device has an ed25519 key pair, made at its first start and kept in
// a 0600 file; its install id is derived from the public key, so it cannot be chosen. It
// enrolls once with an enrollment token the operator provisions, then signs every request
// that the server counts (reports, enrollment itself):
//
//   QP-Device:    <install id>
//   QP-Time:      <unix seconds>
//   QP-Nonce:     <32 hex characters, fresh per request>
//   QP-Signature: <hex ed25519 signature of the canonical request>
//
//   canonical request = "quietpatch-device-request-v1\n" METHOD "\n" TARGET "\n" TIME "\n"
//                       NONCE "\n" hex(SHA-256(body))
//
// The server accepts it only within kMaxClockSkew of its own clock, once per nonce, from a
// device it enrolled and has not revoked.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/result.h"
#include "crypto/keys.h"

namespace qp::contract {

inline constexpr const char* kDeviceHeader = "QP-Device";
inline constexpr const char* kTimeHeader = "QP-Time";
inline constexpr const char* kNonceHeader = "QP-Nonce";
inline constexpr const char* kSignatureHeader = "QP-Signature";
inline constexpr std::chrono::seconds kMaxClockSkew{300};

struct DeviceSignature {
  std::string device;  // install id
  std::string time;    // unix seconds, decimal
  std::string nonce;
  std::string signature;  // hex
};

// The install id of a device key: the first 32 hex characters of SHA-256 of its public
// value. kInvalidArgument unless the key is ed25519.
Result<std::string> DeviceIdOf(const crypto::PublicKeyDescription& key);

// Whether `id` has the form of an install id (32 lowercase hex characters).
bool IsDeviceId(std::string_view id);

std::string CanonicalDeviceRequest(std::string_view method, std::string_view target,
                                   std::string_view time, std::string_view nonce,
                                   std::string_view body);

// Signs a request; `nonce` is fresh random hex (32 characters).
Result<DeviceSignature> SignDeviceRequest(const crypto::SigningKey& key, const std::string& device,
                                          std::string_view method, std::string_view target,
                                          std::string_view body, WallTime now,
                                          const std::string& nonce);

// Checks the form of the headers, the time window and the signature with the device's
// registered key. kInvalidArgument for malformed headers, kVerificationFailed for a bad
// signature or a time outside the window. Replays of a nonce are the caller's to refuse.
Status VerifyDeviceRequest(const crypto::VerifyingKey& key, const DeviceSignature& sig,
                           std::string_view method, std::string_view target, std::string_view body,
                           WallTime now);

// The signature as HTTP header lines ("QP-Device: ...", in the order above).
std::vector<std::string> SignatureHeaderLines(const DeviceSignature& sig);

// A random nonce (32 hex characters).
Result<std::string> NewNonce();

}  // namespace qp::contract
