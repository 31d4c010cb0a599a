// The audit log of operator and automatic actions, as JSON records. On a single instance
// (SQLite) it is a file, one record a line, appended with O_APPEND and fsynced before the
// action is answered, so a record costs O(1) whatever the log's size; past `rotate_bytes`
// the file is renamed aside (audit.log.<unix>-<n>) and a new one begun: rotation never
// drops a record. On PostgreSQL it is the database's audit table (report_store.h), shared by
// every instance. Refused admin requests are coalesced per peer (one record per
// kRefusalWindow, with the count), so a flood of bad tokens cannot fill the disk.
// Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include <nlohmann/json.hpp>

#include "core/clock.h"
#include "core/env.h"
#include "server/report_store.h"

namespace qp::server {

class AuditLog {
 public:
  static constexpr std::uint64_t kDefaultRotateBytes = 64 << 20;
  static constexpr std::chrono::seconds kRefusalWindow{10};
  // The most read back for the views (the newest records).
  static constexpr std::uint64_t kMaxReadBytes = 8 << 20;

  // The newest records the views read back from a table.
  static constexpr int kMaxReadRecords = 20000;

  // `table` (may be null): the database's audit table, used instead of the file at `path`.
  AuditLog(Env* env, Clock* clock, std::string path, AuditTable* table = nullptr,
           std::uint64_t rotate_bytes = kDefaultRotateBytes);

  // Appends {"time", "action", "by", "details", "result"}. No table and no path: does
  // nothing.
  Status Record(const std::string& action, const std::string& peer, const nlohmann::json& details,
                const std::string& result);
  // A refused request from `peer`: recorded at most once per window, with how many.
  void Refused(const std::string& action, const std::string& peer, const std::string& why);
  // The newest records, oldest first (of the current file, at most kMaxReadBytes read; of
  // the table, at most kMaxReadRecords).
  nlohmann::json Recent();

 private:
  Status AppendLocked(const std::string& line);

  Env* env_;
  Clock* clock_;
  std::string path_;
  AuditTable* table_;
  std::uint64_t rotate_bytes_;
  std::mutex mu_;
  std::uint64_t rotations_ = 0;
  struct Refusals {
    std::chrono::steady_clock::time_point last;
    std::uint64_t unrecorded = 0;
  };
  std::map<std::string, Refusals> refusals_;  // by peer
};

}  // namespace qp::server
