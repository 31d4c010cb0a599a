#include "core/ascii.h"

#include <cstdio>

namespace qp {

Status CheckAsciiText(std::string_view text, const std::string& file) {
  int line = 1;
  for (unsigned char c : text) {
    if (c == '\n') ++line;
    if (c >= 0x80 || c == 0) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "0x%02X", c);
      return Error(ErrorCode::kInvalidArgument,
                   file + ":" + std::to_string(line) + ": byte " + hex +
                       " is not ASCII (configuration files are ASCII)");
    }
  }
  return OkStatus();
}

std::string_view TrimBlanks(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

}  // namespace qp
