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

}  // namespace qp
