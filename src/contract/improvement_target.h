// custom.quietpatch: what the signed targets metadata says of each patch of an improvement
// (docs/repository.md). The publisher writes it, the server lists it, the agent decides
// from it; this is its one schema.
//
//   "custom": {"quietpatch": {"component", "platform", "base", "label",
//     "from": "base" | <label>, "source_digest", "result_digest" (tree digests, hex SHA-256),
//     "cves": [..], "urgency": "critical" | "high" | "normal", "exploited": bool,
//     "restart": [unit names], "published": unix seconds, "revoked": bool}}
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "contract/improvement_id.h"
#include "core/result.h"

namespace qp::contract {

// "base": the patch applies to the component as its vendor shipped it.
inline constexpr std::string_view kFromBase = "base";

// critical, high or normal.
bool IsValidUrgency(std::string_view urgency);

struct ImprovementTarget {
  ImprovementId id;
  std::string platform;
  std::string from = std::string(kFromBase);  // "base" or the label it patches from
  std::string source_digest, result_digest;
  std::vector<std::string> cves;
  std::string urgency = "normal";
  bool exploited = false;
  std::vector<std::string> restart;
  std::int64_t published = 0;
  bool revoked = false;

  // Reads the "custom" object of a target. kCorrupt naming `where` (the target path) and
  // the field when it is missing, mistyped or invalid (a label that is not lowercase
  // letters, a digest that is not hex SHA-256, an unknown urgency).
  static Result<ImprovementTarget> FromCustom(const nlohmann::json& custom,
                                              const std::string& where);
  // {"quietpatch": {...}}, the value of the target's "custom".
  nlohmann::json ToCustom() const;
};

}  // namespace qp::contract
