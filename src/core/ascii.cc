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

std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    std::size_t nl = text.find('\n');
    lines.push_back(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
  }
  return lines;
}

std::vector<std::string_view> Split(std::string_view line, char sep) {
  std::vector<std::string_view> parts;
  for (std::size_t at; (at = line.find(sep)) != std::string_view::npos;) {
    parts.push_back(line.substr(0, at));
    line = line.substr(at + 1);
  }
  parts.push_back(line);
  return parts;
}

}  // namespace qp
