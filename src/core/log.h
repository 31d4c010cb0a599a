// Logging setup over spdlog. Logs go to stderr; when stderr is connected to the systemd
// journal (JOURNAL_STREAM matches it), each entry goes to journald's native socket with
// PRIORITY, SYSLOG_IDENTIFIER and the fields of the LogFields in scope on the logging thread
// (QP_COMPONENT, QP_IMPROVEMENT: `journalctl QP_COMPONENT=openssl`). Without that socket,
// lines carry "<N>" priority prefixes on stderr. Never log key material, tokens or file
// contents: log names, sizes and digests.
#pragma once

#include <spdlog/spdlog.h>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"

namespace qp {

enum class LogTarget { kAuto, kStderr, kJournal };

inline constexpr const char* kJournalSocket = "/run/systemd/journal/socket";

// Sets the default logger: level one of "trace", "debug", "info", "warn", "error", "off".
// kInvalidArgument for an unknown level. Safe to call again to change the level.
// `journal_socket`: journald's native socket (tests give their own).
Status InitLogging(std::string_view level, LogTarget target = LogTarget::kAuto,
                   const std::string& journal_socket = kJournalSocket);

// Structured fields for the journal, on this thread while the object lives (nested scopes
// add to the outer ones). Names: A-Z, 0-9 and _, not starting with _.
class LogFields {
 public:
  explicit LogFields(std::vector<std::pair<std::string, std::string>> fields);
  LogFields(std::string name, std::string value);
  ~LogFields();
  LogFields(const LogFields&) = delete;
  LogFields& operator=(const LogFields&) = delete;

 private:
  std::size_t added_;
};

// True when stderr is the journal's stream (systemd sets JOURNAL_STREAM=dev:inode).
bool StderrIsJournal();

}  // namespace qp
