// Small text helpers, and a guard for configuration text handed to toml++: Debian's toml++ 3.3
// reaches a
// __builtin_unreachable on some non-ASCII whitespace code points (found by
// component_config_fuzzer), so quietpatch's TOML files are ASCII, which paths, names,
// versions and commands are in practice.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace qp {

// kInvalidArgument "<file>:<line>: non-ASCII byte 0xCB (configuration files are ASCII)" for
// the first byte >= 0x80 or a NUL.
Status CheckAsciiText(std::string_view text, const std::string& file);

// `text` without the spaces and tabs at its ends (header values, list entries).
std::string_view TrimBlanks(std::string_view text);

// The lines of `text` without their '\n' (a last line without one counts; no empty last).
std::vector<std::string_view> Lines(std::string_view text);

// `line` cut at every `sep` (n separators give n + 1 parts).
std::vector<std::string_view> Split(std::string_view line, char sep);

}  // namespace qp
