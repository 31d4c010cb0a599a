// Who may speak for a device: enrollment and request authentication (docs/threat-model.md,
// "Device identity"). An operator creates enrollment credentials (tokens limited in uses
// and time, optionally needing acceptance); a device enrolls once with one, proving it
// holds the key its install id is derived from; from then on every report it sends is
// signed (contract/device_auth.h) and accepted only from an enrolled, accepted device,
// within the clock window and once per nonce. Anything else is refused before it is
// stored or counted. Thread-safe.
#pragma once

#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "contract/device_auth.h"
#include "core/clock.h"
#include "crypto/keys.h"
#include "server/report_store.h"

namespace qp::server {

struct SignedRequest {
  std::string_view method, target, body;
  contract::DeviceSignature signature;
};

class DeviceGate {
 public:
  // How long a device's registration is trusted from memory before it is read again (so a
  // revocation reaches every instance within this time).
  static constexpr std::chrono::seconds kDeviceCacheTtl{5};
  static constexpr std::size_t kMaxCachedDevices = 100000;
  // Nonces remembered (for twice the clock window); past this, requests are refused
  // until old ones expire.
  static constexpr std::size_t kMaxNonces = 1000000;
  static constexpr int kMaxEnrollmentUses = 1000000;
  static constexpr std::size_t kMaxNoteBytes = 200;

  DeviceGate(ReportStore* store, Clock* clock);

  struct NewEnrollment {
    Enrollment enrollment;
    std::string token;  // "qpe_<id>_<secret>": shown once, never stored
  };
  Result<NewEnrollment> CreateEnrollment(int uses, std::chrono::hours valid, bool require_accept,
                                         const std::string& note);

  // POST /v1/enroll {"token", "public_key"}, signed with the key being enrolled.
  // kVerificationFailed (401) when the request does not prove the key; kFailedPrecondition
  // (403) when the token or the device is refused.
  Result<Device> Enroll(const SignedRequest& request);

  // The accepted device that signed `request`. kVerificationFailed (401): unsigned, badly
  // signed, stale, replayed, or an unknown device; kFailedPrecondition (403): pending or
  // revoked; kIo: the database did not answer. With `deferred`, when the database keeps the
  // nonces (several instances), the nonce is checked here against this instance's memory
  // only and handed back, for the caller to claim in its own write
  // (ReportStore::StoreClaimed): one transaction a request instead of two.
  Result<Device> Authenticate(const SignedRequest& request,
                              std::optional<NonceClaim>* deferred = nullptr);

  // After an operator changed a device or an enrollment: read it again next time.
  void Forget(const std::string& install_id);
  void ForgetAll();

 private:
  struct Cached {
    Device device;
    std::shared_ptr<const crypto::VerifyingKey> key;
    std::chrono::steady_clock::time_point fetched;
  };
  Result<Cached> Lookup(const std::string& install_id);
  // Records the nonce; false when it was seen within the window (a replay). With
  // `deferred` and a database that keeps nonces, its claim there is left to the caller.
  Result<bool> FirstUse(const std::string& install_id, const std::string& nonce,
                        std::optional<NonceClaim>* deferred = nullptr);

  ReportStore* store_;
  Clock* clock_;
  std::mutex mu_;
  std::map<std::string, Cached> cache_;
  std::set<std::string> nonces_;
  std::deque<std::pair<std::chrono::steady_clock::time_point, std::string>> nonce_order_;
};

}  // namespace qp::server
