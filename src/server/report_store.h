// Durable storage of the fleet: enrollment credentials, enrolled devices and their reports,
// behind one interface with two backends: SQLite (the embedded default, WAL mode, a commit
// is fsynced before a call returns) and PostgreSQL (libpq; several server instances may
// share one database). Storing reports is idempotent on (install id, seq). Every fleet
// figure (counts, failure reasons, the protected series) counts accepted devices only.
// Each call is a short transaction; implementations are thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
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

// An enrollment credential: a token "qpe_<id>_<secret>" of which only the secret's SHA-256
// is stored. Limited in uses and time; devices enrolled with it may need an operator's
// acceptance.
struct Enrollment {
  std::string id;
  std::string secret_sha256;  // hex
  int max_uses = 1;
  int used = 0;
  std::int64_t created = 0, expires = 0;
  bool require_accept = false;
  bool revoked = false;
  std::string note;
};

inline constexpr const char* kDevicePending = "pending";
inline constexpr const char* kDeviceAccepted = "accepted";
inline constexpr const char* kDeviceRevoked = "revoked";

struct Device {
  std::string install_id;
  std::string public_key;  // ed25519, hex
  std::string enrollment_id;
  std::string status;  // pending, accepted, revoked
  std::int64_t enrolled = 0;
};

// Events kept per device (its latest state per improvement is kept apart, always).
inline constexpr int kHistoryPerDevice = 1000;

// The audit trail kept in the database, where every instance sharing it writes and reads
// (PostgreSQL). Records are only ever inserted.
class AuditTable {
 public:
  virtual ~AuditTable() = default;
  // One record (a JSON object's text), committed before it returns.
  virtual Status AppendAudit(std::int64_t time, const std::string& record) = 0;
  // The newest `limit` records, oldest first.
  virtual Result<std::vector<std::string>> RecentAudit(int limit) = 0;
};

// A request nonce to claim in the database (DeviceGate; see ReportStore::ClaimNonce).
struct NonceClaim {
  std::string key;                 // install id "/" nonce
  std::int64_t now = 0;            // unix seconds
  std::int64_t forget_before = 0;  // claims older than this may be dropped
};

class ReportStore {
 public:
  virtual ~ReportStore() = default;

  // The database's audit table, or null when the audit log is a local file (SQLite: one
  // instance, whose file sits beside its database).
  virtual AuditTable* audit_table() { return nullptr; }

  // Whether several instances share this database (PostgreSQL): then a request nonce is
  // claimed in the database, so a request replayed to another instance is refused too.
  virtual bool SharesNonces() const { return false; }
  // Claims `key` at `now` (unix seconds); false when it was claimed before. Claims older
  // than `forget_before` may be dropped.
  virtual Result<bool> ClaimNonce(const std::string& key, std::int64_t now,
                                  std::int64_t forget_before) {
    (void)key, (void)now, (void)forget_before;
    return Error(ErrorCode::kUnsupported, "this database keeps no nonces");
  }
  // Store() and ClaimNonce() in one transaction, for a report whose request nonce is
  // claimed with it (one commit a report, not two): kAlreadyExists, and nothing stored,
  // when the nonce was claimed before.
  virtual Result<int> StoreClaimed(const std::vector<StoredEvent>& events, std::int64_t received,
                                   const NonceClaim& claim) {
    (void)events, (void)received, (void)claim;
    return Error(ErrorCode::kUnsupported, "this database keeps no nonces");
  }

  // Store(), or StoreClaimed() with a claim, without waiting: `done` gets what they would
  // return, on the database's writer thread (it must not wait for this store) or, here, on
  // this one before the call returns. A request's thread is then free for the next while
  // its report waits for a batch.
  virtual void StoreAsync(std::vector<StoredEvent> events, std::int64_t received,
                          std::optional<NonceClaim> claim, std::function<void(Result<int>)> done) {
    done(claim ? StoreClaimed(events, received, *claim) : Store(events, received));
  }
  // Returns once every StoreAsync() called before has called its `done`.
  virtual void Flush() {}

  virtual Status AddEnrollment(const Enrollment& enrollment) = 0;
  virtual Result<std::optional<Enrollment>> FindEnrollment(const std::string& id) = 0;
  virtual Result<std::vector<Enrollment>> ListEnrollments() = 0;
  // In one transaction: a device new to the fleet takes one use of a usable enrollment
  // (not revoked, not expired at `now`, uses left) and is pending or accepted as the
  // enrollment says; a device already enrolled with the same key through it is returned
  // as it is (no use taken). kFailedPrecondition saying why otherwise.
  virtual Result<Device> Enroll(const std::string& enrollment_id, const std::string& install_id,
                                const std::string& public_key, std::int64_t now) = 0;
  virtual Result<std::optional<Device>> FindDevice(const std::string& install_id) = 0;
  virtual Result<std::vector<Device>> ListDevices() = 0;
  // kNotFound when there is no such device.
  virtual Status SetDeviceStatus(const std::string& install_id, const std::string& status) = 0;
  // Revokes the enrollment and every device enrolled with it; returns how many devices.
  virtual Result<int> RevokeEnrollment(const std::string& id) = 0;

  // Stores the events in one transaction; returns how many were new (not seen before).
  // Each device keeps its latest state per improvement and its newest kHistoryPerDevice
  // events; older events are dropped in the same transaction.
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

// The enrollment rule both backends apply inside their transaction: `enrollment` as stored
// (none: unknown), `known` the device already registered under `install_id`, if any.
// Returns the device to register (or the known one, unchanged); kFailedPrecondition when
// the enrollment is unknown, revoked, expired or used up, or the install id is taken by
// another key or enrollment, or revoked.
Result<Device> DecideEnrollment(const std::optional<Enrollment>& enrollment,
                                const std::optional<Device>& known, const std::string& install_id,
                                const std::string& public_key, std::int64_t now);

// "sqlite:/var/lib/quietpatch-server/reports.db" or "postgresql://..." (libpq URI).
Result<std::unique_ptr<ReportStore>> OpenReportStore(const std::string& url);

Result<std::unique_ptr<ReportStore>> OpenSqliteReportStore(const std::string& path);
Result<std::unique_ptr<ReportStore>> OpenPostgresReportStore(const std::string& conninfo);

}  // namespace qp::server
