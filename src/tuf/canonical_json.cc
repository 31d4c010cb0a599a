#include "tuf/canonical_json.h"

#include <set>
#include <vector>

namespace qp::tuf {
namespace {

struct ParseAbort {
  std::string why;
};

void AppendCanonical(const Json& v, std::string& out) {
  switch (v.type()) {
    case Json::value_t::null:
      out += "null";
      return;
    case Json::value_t::boolean:
      out += v.get<bool>() ? "true" : "false";
      return;
    case Json::value_t::number_integer:
      out += std::to_string(v.get<std::int64_t>());
      return;
    case Json::value_t::number_unsigned:
      out += std::to_string(v.get<std::uint64_t>());
      return;
    case Json::value_t::string: {
      const auto& s = v.get_ref<const std::string&>();
      out.push_back('"');
      for (char c : s) {
        if (c == '"' || c == '\\') out.push_back('\\');
        out.push_back(c);
      }
      out.push_back('"');
      return;
    }
    case Json::value_t::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& item : v) {
        if (!first) out.push_back(',');
        first = false;
        AppendCanonical(item, out);
      }
      out.push_back(']');
      return;
    }
    case Json::value_t::object: {
      // nlohmann's object is a std::map<std::string, ...>: iteration is in bytewise key
      // order, which for UTF-8 is code point order.
      out.push_back('{');
      bool first = true;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (!first) out.push_back(',');
        first = false;
        AppendCanonical(Json(it.key()), out);
        out.push_back(':');
        AppendCanonical(it.value(), out);
      }
      out.push_back('}');
      return;
    }
    case Json::value_t::number_float:
      throw ParseAbort{"floats have no canonical form"};
    case Json::value_t::binary:
    case Json::value_t::discarded:
      throw ParseAbort{"value has no canonical JSON form"};
  }
}

}  // namespace

Result<Json> ParseJson(std::span<const std::uint8_t> bytes, const JsonLimits& limits) {
  if (bytes.size() > limits.max_bytes) {
    return Error(ErrorCode::kTooLarge, "JSON document of " + std::to_string(bytes.size()) +
                                           " bytes exceeds the limit of " +
                                           std::to_string(limits.max_bytes));
  }
  // One set of seen keys per open object, to reject duplicates.
  std::vector<std::set<std::string>> seen_keys;
  auto callback = [&](int depth, Json::parse_event_t event, Json& parsed) -> bool {
    switch (event) {
      case Json::parse_event_t::object_start:
      case Json::parse_event_t::array_start:
        if (depth >= limits.max_depth) throw ParseAbort{"JSON nested too deeply"};
        if (event == Json::parse_event_t::object_start) seen_keys.emplace_back();
        break;
      case Json::parse_event_t::object_end:
        if (!seen_keys.empty()) seen_keys.pop_back();
        break;
      case Json::parse_event_t::key:
        if (!seen_keys.empty() &&
            !seen_keys.back().insert(parsed.get_ref<const std::string&>()).second) {
          throw ParseAbort{"duplicate key \"" + parsed.get<std::string>() + "\""};
        }
        break;
      default:
        break;
    }
    return true;
  };
  try {
    return Json::parse(bytes.begin(), bytes.end(), callback, /*allow_exceptions=*/true,
                       /*ignore_comments=*/false);
  } catch (const ParseAbort& e) {
    return Error(ErrorCode::kCorrupt, "invalid JSON: " + e.why);
  } catch (const Json::exception& e) {
    return Error(ErrorCode::kCorrupt, std::string("invalid JSON: ") + e.what());
  }
}

Result<Json> ParseJson(std::string_view text, const JsonLimits& limits) {
  return ParseJson(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(text.data()),
                                                 text.size()),
                   limits);
}

Result<std::string> CanonicalJson(const Json& value) {
  std::string out;
  try {
    AppendCanonical(value, out);
  } catch (const ParseAbort& e) {
    return Error(ErrorCode::kInvalidArgument, "no canonical JSON: " + e.why);
  }
  return out;
}

std::string PrettyJson(const Json& value) {
  return value.dump(2, ' ', /*ensure_ascii=*/false, Json::error_handler_t::strict) + "\n";
}

}  // namespace qp::tuf
