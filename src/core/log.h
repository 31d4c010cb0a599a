// Logging setup over spdlog. Logs go to stderr; when stderr is connected to the systemd
// journal (JOURNAL_STREAM matches it), lines carry "<N>" priority prefixes that journald
// understands, instead of timestamps it adds itself. Never log key material, tokens or
// file contents: log names, sizes and digests.
#pragma once

#include <spdlog/spdlog.h>

#include <string_view>

#include "core/result.h"

namespace qp {

enum class LogTarget { kAuto, kStderr, kJournal };

// Sets the default logger: level one of "trace", "debug", "info", "warn", "error", "off".
// kInvalidArgument for an unknown level. Safe to call again to change the level.
Status InitLogging(std::string_view level, LogTarget target = LogTarget::kAuto);

// True when stderr is the journal's stream (systemd sets JOURNAL_STREAM=dev:inode).
bool StderrIsJournal();

}  // namespace qp
