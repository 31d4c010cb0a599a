// JSON parsing with limits, and the canonical JSON form (the OLPC dialect TUF signs):
// no whitespace, object keys sorted by code point (UTF-8 byte order), strings escaping only
// `"` and `\` (everything else, control characters included, written raw as UTF-8),
// integers in plain decimal, no floats. Pure; thread-compatible.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include <nlohmann/json.hpp>

#include "core/result.h"

namespace qp::tuf {

using Json = nlohmann::json;

struct JsonLimits {
  std::size_t max_bytes = 16 * 1024 * 1024;
  int max_depth = 32;
};

// Parses one JSON document. kTooLarge when the input is over the size limit, kCorrupt for
// malformed JSON, invalid UTF-8, nesting deeper than the limit or a key repeated within
// one object (a duplicate would make the signed meaning ambiguous between implementations).
Result<Json> ParseJson(std::span<const std::uint8_t> bytes, const JsonLimits& limits = {});
Result<Json> ParseJson(std::string_view text, const JsonLimits& limits = {});

// The canonical form of `value`. kInvalidArgument when it holds a float or binary value.
Result<std::string> CanonicalJson(const Json& value);

// Metadata as served: indented for people. Not canonical; never signed or verified as is.
std::string PrettyJson(const Json& value);

}  // namespace qp::tuf
