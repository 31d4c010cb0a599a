// Fuzzes JSON parsing and canonicalisation: no crash, and the canonical form of anything
// parsed (without control characters) is itself parseable to the same canonical form (a fixed
// point).
#include <cstdlib>

#include "tuf/canonical_json.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto json = qp::tuf::ParseJson(std::span<const std::uint8_t>(data, size));
  if (!json.ok()) return 0;
  auto canonical = qp::tuf::CanonicalJson(*json);
  if (!canonical.ok()) return 0;
  // Raw control characters are canonical but not strict JSON: no re-parse for those.
  for (unsigned char c : *canonical) {
    if (c < 0x20) return 0;
  }
  auto again = qp::tuf::ParseJson(*canonical);
  if (!again.ok()) std::abort();
  auto canonical2 = qp::tuf::CanonicalJson(*again);
  if (!canonical2.ok() || *canonical2 != *canonical) std::abort();
  return 0;
}
