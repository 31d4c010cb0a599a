#include "contract/device_auth.h"

#include <openssl/rand.h>

#include <charconv>

#include "core/hash.h"

namespace qp::contract {
namespace {

constexpr std::size_t kDeviceIdChars = 32;
constexpr std::size_t kNonceChars = 32;
constexpr std::size_t kMaxTimeChars = 12;

bool IsLowerHex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

std::span<const std::uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

}  // namespace

Result<std::string> DeviceIdOf(const crypto::PublicKeyDescription& key) {
  if (key.keytype != "ed25519" || key.public_value.size() != 64 || !IsLowerHex(key.public_value)) {
    return Error(ErrorCode::kInvalidArgument, "a device key is ed25519, 64 lowercase hex");
  }
  return HexEncode(Sha256Of(std::string_view(key.public_value))).substr(0, kDeviceIdChars);
}

bool IsDeviceId(std::string_view id) { return id.size() == kDeviceIdChars && IsLowerHex(id); }

std::string CanonicalDeviceRequest(std::string_view method, std::string_view target,
                                   std::string_view time, std::string_view nonce,
                                   std::string_view body) {
  std::string out = "quietpatch-device-request-v1\n";
  out.append(method).append("\n").append(target).append("\n").append(time).append("\n");
  out.append(nonce).append("\n").append(HexEncode(Sha256Of(body)));
  return out;
}

Result<DeviceSignature> SignDeviceRequest(const crypto::SigningKey& key, const std::string& device,
                                          std::string_view method, std::string_view target,
                                          std::string_view body, WallTime now,
                                          const std::string& nonce) {
  DeviceSignature sig;
  sig.device = device;
  sig.time = std::to_string(
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count());
  sig.nonce = nonce;
  std::string message = CanonicalDeviceRequest(method, target, sig.time, nonce, body);
  QP_ASSIGN_OR_RETURN(auto bytes, key.Sign(Bytes(message)));
  sig.signature = HexEncode(bytes);
  return sig;
}

Status VerifyDeviceRequest(const crypto::VerifyingKey& key, const DeviceSignature& sig,
                           std::string_view method, std::string_view target, std::string_view body,
                           WallTime now) {
  if (!IsDeviceId(sig.device)) return Error(ErrorCode::kInvalidArgument, "QP-Device: malformed");
  if (sig.nonce.size() != kNonceChars || !IsLowerHex(sig.nonce)) {
    return Error(ErrorCode::kInvalidArgument, "QP-Nonce: 32 lowercase hex characters expected");
  }
  std::uint64_t t = 0;
  auto [end, ec] = std::from_chars(sig.time.data(), sig.time.data() + sig.time.size(), t);
  if (sig.time.empty() || sig.time.size() > kMaxTimeChars || ec != std::errc() ||
      end != sig.time.data() + sig.time.size()) {
    return Error(ErrorCode::kInvalidArgument, "QP-Time: unix seconds expected");
  }
  std::int64_t server =
      std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  std::int64_t skew = static_cast<std::int64_t>(t) - server;
  if (skew > kMaxClockSkew.count() || -skew > kMaxClockSkew.count()) {
    return Error(ErrorCode::kVerificationFailed, "QP-Time is " + std::to_string(skew) +
                                                     " s from the server's clock (at most " +
                                                     std::to_string(kMaxClockSkew.count()) + " s)");
  }
  auto signature = HexDecode(sig.signature);
  if (!signature.ok()) return Error(ErrorCode::kInvalidArgument, "QP-Signature: hex expected");
  std::string message = CanonicalDeviceRequest(method, target, sig.time, sig.nonce, body);
  if (!key.Verify(Bytes(message), *signature).ok()) {
    return Error(ErrorCode::kVerificationFailed, "device signature does not verify");
  }
  return OkStatus();
}

std::vector<std::string> SignatureHeaderLines(const DeviceSignature& sig) {
  return {std::string(kDeviceHeader) + ": " + sig.device,
          std::string(kTimeHeader) + ": " + sig.time, std::string(kNonceHeader) + ": " + sig.nonce,
          std::string(kSignatureHeader) + ": " + sig.signature};
}

Result<std::string> NewNonce() {
  std::uint8_t b[kNonceChars / 2];
  if (RAND_bytes(b, sizeof b) != 1) return Error(ErrorCode::kInternal, "no randomness for a nonce");
  return HexEncode(b);
}

}  // namespace qp::contract
