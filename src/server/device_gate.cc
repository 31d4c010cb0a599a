#include "server/device_gate.h"

#include <openssl/rand.h>

#include <nlohmann/json.hpp>

#include "core/hash.h"

namespace qp::server {
namespace {

constexpr const char* kTokenPrefix = "qpe_";
constexpr std::size_t kIdBytes = 8, kSecretBytes = 32;

Result<std::string> RandomHex(std::size_t bytes) {
  std::vector<std::uint8_t> b(bytes);
  if (RAND_bytes(b.data(), static_cast<int>(b.size())) != 1) {
    return Error(ErrorCode::kInternal, "no randomness");
  }
  return HexEncode(b);
}

Error Unauthenticated(const std::string& why) { return Error(ErrorCode::kVerificationFailed, why); }

}  // namespace

DeviceGate::DeviceGate(ReportStore* store, Clock* clock) : store_(store), clock_(clock) {}

Result<DeviceGate::NewEnrollment> DeviceGate::CreateEnrollment(int uses, std::chrono::hours valid,
                                                               bool require_accept,
                                                               const std::string& note) {
  if (uses < 1 || uses > kMaxEnrollmentUses) {
    return Error(ErrorCode::kInvalidArgument,
                 "uses: 1.." + std::to_string(kMaxEnrollmentUses) + " devices");
  }
  if (valid.count() < 1 || valid > std::chrono::hours(24 * 366)) {
    return Error(ErrorCode::kInvalidArgument, "valid for 1 hour to 366 days");
  }
  if (note.size() > kMaxNoteBytes) return Error(ErrorCode::kInvalidArgument, "note too long");
  QP_ASSIGN_OR_RETURN(std::string id, RandomHex(kIdBytes));
  QP_ASSIGN_OR_RETURN(std::string secret, RandomHex(kSecretBytes));
  NewEnrollment out;
  out.enrollment.id = id;
  out.enrollment.secret_sha256 = HexEncode(Sha256Of(std::string_view(secret)));
  out.enrollment.max_uses = uses;
  out.enrollment.created = UnixSeconds(clock_->Now());
  out.enrollment.expires = out.enrollment.created + valid.count() * 3600;
  out.enrollment.require_accept = require_accept;
  out.enrollment.note = note;
  QP_RETURN_IF_ERROR(store_->AddEnrollment(out.enrollment));
  out.token = kTokenPrefix + id + "_" + secret;
  return out;
}

Result<Device> DeviceGate::Enroll(const SignedRequest& request) {
  using Json = nlohmann::json;
  Json j = Json::parse(request.body, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("token") || !j["token"].is_string() ||
      !j.contains("public_key") || !j["public_key"].is_string()) {
    return Error(ErrorCode::kInvalidArgument,
                 R"(expected {"token": "qpe_...", "public_key": hex})");
  }
  crypto::PublicKeyDescription pub{"ed25519", "ed25519", j["public_key"].get<std::string>()};
  auto id = contract::DeviceIdOf(pub);
  if (!id.ok()) return Unauthenticated("public_key: " + id.error().message());
  if (request.signature.device != *id) {
    return Unauthenticated("QP-Device is not the install id of public_key");
  }
  auto key = crypto::VerifyingKey::Parse(pub);
  if (!key.ok()) return Unauthenticated("public_key: " + key.error().message());
  Status signed_ok = contract::VerifyDeviceRequest(**key, request.signature, request.method,
                                                   request.target, request.body, clock_->Now());
  if (!signed_ok.ok()) return Unauthenticated(signed_ok.error().message());
  QP_ASSIGN_OR_RETURN(bool fresh, FirstUse(*id, request.signature.nonce));
  if (!fresh) return Unauthenticated("replayed request");

  // "qpe_<id>_<secret>": the id finds the enrollment, the secret is compared by digest in
  // constant time.
  std::string token = j["token"].get<std::string>();
  std::string prefix = kTokenPrefix;
  std::size_t sep = token.find('_', prefix.size());
  if (token.rfind(prefix, 0) != 0 || sep == std::string::npos) {
    return Error(ErrorCode::kFailedPrecondition, "malformed enrollment token");
  }
  std::string enrollment_id = token.substr(prefix.size(), sep - prefix.size());
  std::string secret = token.substr(sep + 1);
  QP_ASSIGN_OR_RETURN(auto enrollment, store_->FindEnrollment(enrollment_id));
  auto given = Sha256Of(std::string_view(HexEncode(Sha256Of(std::string_view(secret)))));
  auto want = Sha256Of(std::string_view(enrollment ? enrollment->secret_sha256 : std::string()));
  if (!enrollment || !ConstantTimeEquals(given, want)) {
    return Error(ErrorCode::kFailedPrecondition, "unknown enrollment token");
  }
  QP_ASSIGN_OR_RETURN(
      Device d, store_->Enroll(enrollment_id, *id, pub.public_value, UnixSeconds(clock_->Now())));
  Forget(*id);
  return d;
}

Result<DeviceGate::Cached> DeviceGate::Lookup(const std::string& install_id) {
  auto now = clock_->Monotonic();
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(install_id);
    if (it != cache_.end() && now - it->second.fetched < kDeviceCacheTtl) return it->second;
  }
  QP_ASSIGN_OR_RETURN(auto device, store_->FindDevice(install_id));
  if (!device) return Unauthenticated("unknown device " + install_id + "; enroll it first");
  auto key = crypto::VerifyingKey::Parse({"ed25519", "ed25519", device->public_key});
  if (!key.ok()) return Unauthenticated("device key: " + key.error().message());
  Cached c{*device, std::move(key).value(), now};
  std::lock_guard<std::mutex> lock(mu_);
  if (cache_.size() >= kMaxCachedDevices) cache_.clear();
  cache_[install_id] = c;
  return c;
}

Result<bool> DeviceGate::FirstUse(const std::string& install_id, const std::string& nonce,
                                  std::optional<NonceClaim>* deferred) {
  const std::string key = install_id + "/" + nonce;
  {
    auto now = clock_->Monotonic();
    std::lock_guard<std::mutex> lock(mu_);
    while (!nonce_order_.empty() &&
           now - nonce_order_.front().first > 2 * contract::kMaxClockSkew) {
      nonces_.erase(nonce_order_.front().second);
      nonce_order_.pop_front();
    }
    if (nonces_.size() >= kMaxNonces) {
      return Error(ErrorCode::kIo, "too many requests in the replay window; retry later");
    }
    if (!nonces_.insert(key).second) return false;
    nonce_order_.emplace_back(now, key);
  }
  if (!store_->SharesNonces()) return true;
  // Another instance may have seen it: the database decides (outside the lock).
  const std::int64_t wall = UnixSeconds(clock_->Now());
  const std::int64_t window = 2 * contract::kMaxClockSkew.count();
  if (deferred != nullptr) {
    *deferred = NonceClaim{key, wall, wall - window};
    return true;
  }
  return store_->ClaimNonce(key, wall, wall - window);
}

Result<Device> DeviceGate::Authenticate(const SignedRequest& request,
                                        std::optional<NonceClaim>* deferred) {
  const auto& sig = request.signature;
  if (sig.device.empty() || sig.signature.empty()) {
    return Unauthenticated(
        "unsigned request: enrolled devices sign with QP-Device, QP-Time, "
        "QP-Nonce and QP-Signature");
  }
  if (!contract::IsDeviceId(sig.device)) return Unauthenticated("QP-Device: malformed");
  QP_ASSIGN_OR_RETURN(Cached c, Lookup(sig.device));
  Status s = contract::VerifyDeviceRequest(*c.key, sig, request.method, request.target,
                                           request.body, clock_->Now());
  if (!s.ok()) return Unauthenticated(s.error().message());
  if (c.device.status != kDeviceAccepted) {
    return Error(ErrorCode::kFailedPrecondition, "device " + sig.device + " is " + c.device.status);
  }
  QP_ASSIGN_OR_RETURN(bool fresh, FirstUse(sig.device, sig.nonce, deferred));
  if (!fresh) return Unauthenticated("replayed request");
  return c.device;
}

void DeviceGate::Forget(const std::string& install_id) {
  std::lock_guard<std::mutex> lock(mu_);
  cache_.erase(install_id);
}

void DeviceGate::ForgetAll() {
  std::lock_guard<std::mutex> lock(mu_);
  cache_.clear();
}

}  // namespace qp::server
