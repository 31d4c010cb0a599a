// Validation of device reports (POST /v1/reports): untrusted JSON with limits on every
// field; a malformed report is refused whole with a message saying which field.
//
//   {"install_id": hex 16..64, "agent_version": <= 64 chars,
//    "events": [ <= 500 of {"seq" >= 1, "time", "component", "platform", "base",
//                "improvement", "state", "error" (<= 2000 chars),
//                "restart_needed": [<= 100 of {"pid", "name"}]} ]}
#pragma once

#include <string_view>
#include <vector>

#include "core/result.h"
#include "server/report_store.h"

namespace qp::server {

struct ParsedReport {
  std::string install_id;
  std::string agent_version;
  std::vector<StoredEvent> events;
};

inline constexpr std::size_t kMaxReportBytes = 256 * 1024;

// kInvalidArgument naming the field for anything malformed or out of bounds.
Result<ParsedReport> ParseReport(std::string_view body);

}  // namespace qp::server
