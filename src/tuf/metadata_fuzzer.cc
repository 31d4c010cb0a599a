// Fuzzes metadata parsing and verification: every role parser, then the trusted-metadata
// state machine with the input as root, timestamp, snapshot and targets.
#include <chrono>

#include "tuf/metadata.h"
#include "tuf/trusted_metadata.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::span<const std::uint8_t> bytes(data, size);
  (void)qp::tuf::ParseRoot(bytes);
  (void)qp::tuf::ParseTimestamp(bytes);
  (void)qp::tuf::ParseSnapshot(bytes);
  auto targets = qp::tuf::ParseTargets(bytes);
  if (targets.ok() && targets->signed_part.delegations) {
    for (const auto& role : targets->signed_part.delegations->roles) {
      (void)role.IsDelegatedPath("some/target/path.txt");
    }
  }
  auto now = std::chrono::system_clock::from_time_t(1800000000);
  auto trusted = qp::tuf::TrustedMetadata::Create(bytes, now);
  if (trusted.ok()) {
    (void)trusted->UpdateRoot(bytes);
    (void)trusted->UpdateTimestamp(bytes);
    (void)trusted->UpdateSnapshot(bytes, false);
    (void)trusted->UpdateTargets(bytes, "targets", "root");
  }
  return 0;
}
