// Durable storage of device reports, behind one interface with two backends: SQLite (the
// embedded default, WAL mode, a commit is fsynced before Store returns) and PostgreSQL
// (libpq; several server instances may share one database). Storing is idempotent on
// (install id, seq). Each call is a short transaction; implementations are thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"

namespace qp::server {

struct StoredEvent {
  std::string install_id;
  std::int64_t seq = 0;
  std::int64_t time = 0;
  std::string component, platform, base, improvement;  // improvement: label or ""
  std::string state, error;
  std::string restart_needed;  // JSON array as received (validated)
  std::string agent_version;

  // "component/base/label", or "" when the event names no improvement.
  std::string ImprovementId() const {
    return improvement.empty() ? "" : component + "/" + base + "/" + improvement;
  }
};

class ReportStore {
 public:
  virtual ~ReportStore() = default;
  // Stores the events in one transaction; returns how many were new (not seen before).
  virtual Result<int> Store(const std::vector<StoredEvent>& events, std::int64_t received) = 0;
  // Per improvement id: number of devices whose latest event about it is in each state.
  virtual Result<std::map<std::string, std::map<std::string, int>>> DeviceCounts() = 0;
  // The most frequent errors of devices whose latest state for the improvement is failed
  // or rolled_back.
  virtual Result<std::vector<std::pair<std::string, int>>> FailureReasons(
      const std::string& improvement_id, int limit) = 0;
  // (time, devices protected so far) at each device's first "protected" report.
  virtual Result<std::vector<std::pair<std::int64_t, int>>> ProtectedSeries(
      const std::string& improvement_id) = 0;
  virtual Result<std::int64_t> CountEvents() = 0;
  // Removes everything (tests and benchmarks only).
  virtual Status Clear() = 0;
};

// "sqlite:/var/lib/quietpatch-server/reports.db" or "postgresql://..." (libpq URI).
Result<std::unique_ptr<ReportStore>> OpenReportStore(const std::string& url);

Result<std::unique_ptr<ReportStore>> OpenSqliteReportStore(const std::string& path);
Result<std::unique_ptr<ReportStore>> OpenPostgresReportStore(const std::string& conninfo);

}  // namespace qp::server
