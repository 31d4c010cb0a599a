#include "contract/timestamp_peek.h"

#include <nlohmann/json.hpp>

#include "tuf/metadata.h"

namespace qp::contract {

Result<TimestampPeek> PeekTimestamp(std::span<const std::uint8_t> bytes) {
  if (bytes.size() > kMaxTimestampBytes) {
    return Error(ErrorCode::kTooLarge,
                 "timestamp.json larger than " + std::to_string(kMaxTimestampBytes) + " bytes");
  }
  auto j = nlohmann::json::parse(bytes.begin(), bytes.end(), nullptr, false);
  const auto bad = [] {
    return Error(ErrorCode::kCorrupt, "timestamp.json has no signed version and expiry");
  };
  if (j.is_discarded() || !j.is_object()) return bad();
  auto s = j.find("signed");
  if (s == j.end() || !s->is_object()) return bad();
  auto v = s->find("version");
  auto e = s->find("expires");
  if (v == s->end() || !v->is_number_unsigned() || e == s->end() || !e->is_string()) return bad();
  TimestampPeek out;
  out.version = v->get<std::uint64_t>();
  QP_ASSIGN_OR_RETURN(out.expires, tuf::ParseExpiry(e->get<std::string>()));
  return out;
}

}  // namespace qp::contract
