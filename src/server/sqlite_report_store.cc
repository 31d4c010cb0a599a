// The SQLite backend of ReportStore: one connection guarded by a mutex, WAL journal,
// synchronous=FULL so that a report is on disk before it is acknowledged.
#include <sqlite3.h>

#include <mutex>
#include <set>

#include "contract/improvement_id.h"
#include "server/report_store.h"

namespace qp::server {
namespace {

constexpr const char* kSchema = R"SQL(
CREATE TABLE IF NOT EXISTS events (
  install_id TEXT NOT NULL, seq INTEGER NOT NULL, time INTEGER NOT NULL,
  component TEXT NOT NULL, platform TEXT NOT NULL, base TEXT NOT NULL,
  improvement TEXT NOT NULL, state TEXT NOT NULL, error TEXT NOT NULL,
  restart_needed TEXT NOT NULL, agent_version TEXT NOT NULL, received INTEGER NOT NULL,
  PRIMARY KEY (install_id, seq));
CREATE TABLE IF NOT EXISTS devices (
  install_id TEXT NOT NULL, improvement_id TEXT NOT NULL, state TEXT NOT NULL,
  error TEXT NOT NULL, seq INTEGER NOT NULL, updated INTEGER NOT NULL,
  PRIMARY KEY (install_id, improvement_id));
DROP INDEX IF EXISTS events_protected;
CREATE INDEX IF NOT EXISTS events_protected_at ON events (component, base, improvement,
  install_id, time) WHERE state = 'protected';
CREATE TABLE IF NOT EXISTS enrollments (
  id TEXT PRIMARY KEY, secret_sha256 TEXT NOT NULL, max_uses INTEGER NOT NULL,
  used INTEGER NOT NULL, created INTEGER NOT NULL, expires INTEGER NOT NULL,
  require_accept INTEGER NOT NULL, revoked INTEGER NOT NULL, note TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS fleet_devices (
  install_id TEXT PRIMARY KEY, public_key TEXT NOT NULL, enrollment_id TEXT NOT NULL,
  status TEXT NOT NULL, enrolled INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS fleet_devices_enrollment ON fleet_devices (enrollment_id);
)SQL";

constexpr const char* kPruneHistory =
    "DELETE FROM events WHERE install_id = ? AND seq < (SELECT MIN(seq) FROM (SELECT seq FROM "
    "events WHERE install_id = ? ORDER BY seq DESC LIMIT 1000) AS recent)";
static_assert(kHistoryPerDevice == 1000, "kPruneHistory keeps 1000 events");

constexpr const char* kEnrollmentColumns =
    "id, secret_sha256, max_uses, used, created, expires, require_accept, revoked, note";
constexpr const char* kDeviceColumns = "install_id, public_key, enrollment_id, status, enrolled";

class SqliteReportStore final : public ReportStore {
 public:
  explicit SqliteReportStore(sqlite3* db) : db_(db) {}
  ~SqliteReportStore() override { sqlite3_close(db_); }

  Status Exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      std::string msg = err ? err : "?";
      sqlite3_free(err);
      return Error(ErrorCode::kIo, std::string("sqlite: ") + msg);
    }
    return OkStatus();
  }

  Error Fail(const std::string& what) {
    return Error(ErrorCode::kIo, "sqlite: " + what + ": " + sqlite3_errmsg(db_));
  }

  Result<int> Store(const std::vector<StoredEvent>& events, std::int64_t received) override {
    std::lock_guard<std::mutex> lock(mu_);
    QP_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    int stored = 0;
    Status s = [&]() -> Status {
      sqlite3_stmt* insert = nullptr;
      sqlite3_stmt* upsert = nullptr;
      if (sqlite3_prepare_v2(db_, "INSERT OR IGNORE INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                             -1, &insert, nullptr) != SQLITE_OK) {
        return Fail("prepare insert");
      }
      if (sqlite3_prepare_v2(
              db_,
              "INSERT INTO devices VALUES (?,?,?,?,?,?) ON CONFLICT(install_id, improvement_id) "
              "DO UPDATE SET state=excluded.state, error=excluded.error, seq=excluded.seq, "
              "updated=excluded.updated WHERE excluded.seq > devices.seq",
              -1, &upsert, nullptr) != SQLITE_OK) {
        sqlite3_finalize(insert);
        return Fail("prepare upsert");
      }
      Status result = OkStatus();
      for (const auto& e : events) {
        auto text = [&](sqlite3_stmt* st, int i, const std::string& v) {
          sqlite3_bind_text(st, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
        };
        sqlite3_reset(insert);
        text(insert, 1, e.install_id);
        sqlite3_bind_int64(insert, 2, e.seq);
        sqlite3_bind_int64(insert, 3, e.time);
        text(insert, 4, e.component);
        text(insert, 5, e.platform);
        text(insert, 6, e.base);
        text(insert, 7, e.improvement);
        text(insert, 8, e.state);
        text(insert, 9, e.error);
        text(insert, 10, e.restart_needed);
        text(insert, 11, e.agent_version);
        sqlite3_bind_int64(insert, 12, received);
        if (sqlite3_step(insert) != SQLITE_DONE) {
          result = Fail("insert");
          break;
        }
        if (sqlite3_changes(db_) == 0) continue;  // seen before
        ++stored;
        std::string id = e.ImprovementId();
        if (id.empty()) continue;
        sqlite3_reset(upsert);
        text(upsert, 1, e.install_id);
        text(upsert, 2, id);
        text(upsert, 3, e.state);
        text(upsert, 4, e.error);
        sqlite3_bind_int64(upsert, 5, e.seq);
        sqlite3_bind_int64(upsert, 6, e.time);
        if (sqlite3_step(upsert) != SQLITE_DONE) {
          result = Fail("upsert");
          break;
        }
      }
      sqlite3_finalize(insert);
      sqlite3_finalize(upsert);
      if (!result.ok()) return result;
      // A bounded history per device.
      std::set<std::string> ids;
      for (const auto& e : events) ids.insert(e.install_id);
      for (const auto& id : ids) {
        QP_RETURN_IF_ERROR(QueryLocked(kPruneHistory, {id, id}, [](sqlite3_stmt*) {}));
      }
      return OkStatus();
    }();
    if (!s.ok()) {
      (void)Exec("ROLLBACK");
      return s.error();
    }
    QP_RETURN_IF_ERROR(Exec("COMMIT"));
    return stored;
  }

  template <typename Row>
  Status Query(const std::string& sql, const std::vector<std::string>& args, Row row) {
    std::lock_guard<std::mutex> lock(mu_);
    return QueryLocked(sql, args, row);
  }

  template <typename Row>
  Status QueryLocked(const std::string& sql, const std::vector<std::string>& args, Row row) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK) return Fail("prepare");
    for (std::size_t i = 0; i < args.size(); ++i) {
      sqlite3_bind_text(st, static_cast<int>(i + 1), args[i].data(),
                        static_cast<int>(args[i].size()), SQLITE_TRANSIENT);
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) row(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return Fail("query");
    return OkStatus();
  }

  static std::string Col(sqlite3_stmt* st, int i) {
    const unsigned char* t = sqlite3_column_text(st, i);
    return t ? reinterpret_cast<const char*>(t) : "";
  }

  static Enrollment EnrollmentRow(sqlite3_stmt* st) {
    Enrollment e;
    e.id = Col(st, 0);
    e.secret_sha256 = Col(st, 1);
    e.max_uses = sqlite3_column_int(st, 2);
    e.used = sqlite3_column_int(st, 3);
    e.created = sqlite3_column_int64(st, 4);
    e.expires = sqlite3_column_int64(st, 5);
    e.require_accept = sqlite3_column_int(st, 6) != 0;
    e.revoked = sqlite3_column_int(st, 7) != 0;
    e.note = Col(st, 8);
    return e;
  }

  static Device DeviceRow(sqlite3_stmt* st) {
    return Device{Col(st, 0), Col(st, 1), Col(st, 2), Col(st, 3), sqlite3_column_int64(st, 4)};
  }

  Status AddEnrollment(const Enrollment& e) override {
    return Query(std::string("INSERT INTO enrollments (") + kEnrollmentColumns +
                     ") VALUES (?,?,?,?,?,?,?,?,?)",
                 {e.id, e.secret_sha256, std::to_string(e.max_uses), std::to_string(e.used),
                  std::to_string(e.created), std::to_string(e.expires),
                  e.require_accept ? "1" : "0", e.revoked ? "1" : "0", e.note},
                 [](sqlite3_stmt*) {});
  }

  Result<std::optional<Enrollment>> FindEnrollment(const std::string& id) override {
    std::optional<Enrollment> out;
    QP_RETURN_IF_ERROR(
        Query(std::string("SELECT ") + kEnrollmentColumns + " FROM enrollments WHERE id = ?", {id},
              [&](sqlite3_stmt* st) { out = EnrollmentRow(st); }));
    return out;
  }

  Result<std::vector<Enrollment>> ListEnrollments() override {
    std::vector<Enrollment> out;
    QP_RETURN_IF_ERROR(
        Query(std::string("SELECT ") + kEnrollmentColumns + " FROM enrollments ORDER BY created",
              {}, [&](sqlite3_stmt* st) { out.push_back(EnrollmentRow(st)); }));
    return out;
  }

  Result<Device> Enroll(const std::string& enrollment_id, const std::string& install_id,
                        const std::string& public_key, std::int64_t now) override {
    std::lock_guard<std::mutex> lock(mu_);
    QP_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    auto done = [&]() -> Result<Device> {
      std::optional<Enrollment> e;
      QP_RETURN_IF_ERROR(QueryLocked(
          std::string("SELECT ") + kEnrollmentColumns + " FROM enrollments WHERE id = ?",
          {enrollment_id}, [&](sqlite3_stmt* st) { e = EnrollmentRow(st); }));
      std::optional<Device> known;
      QP_RETURN_IF_ERROR(QueryLocked(
          std::string("SELECT ") + kDeviceColumns + " FROM fleet_devices WHERE install_id = ?",
          {install_id}, [&](sqlite3_stmt* st) { known = DeviceRow(st); }));
      QP_ASSIGN_OR_RETURN(Device d, DecideEnrollment(e, known, install_id, public_key, now));
      if (known) return d;
      QP_RETURN_IF_ERROR(QueryLocked("UPDATE enrollments SET used = used + 1 WHERE id = ?",
                                     {enrollment_id}, [](sqlite3_stmt*) {}));
      QP_RETURN_IF_ERROR(QueryLocked(
          std::string("INSERT INTO fleet_devices (") + kDeviceColumns + ") VALUES (?,?,?,?,?)",
          {d.install_id, d.public_key, d.enrollment_id, d.status, std::to_string(d.enrolled)},
          [](sqlite3_stmt*) {}));
      return d;
    }();
    if (!done.ok()) {
      (void)Exec("ROLLBACK");
      return done.error();
    }
    QP_RETURN_IF_ERROR(Exec("COMMIT"));
    return done;
  }

  Result<std::optional<Device>> FindDevice(const std::string& install_id) override {
    std::optional<Device> out;
    QP_RETURN_IF_ERROR(
        Query(std::string("SELECT ") + kDeviceColumns + " FROM fleet_devices WHERE install_id = ?",
              {install_id}, [&](sqlite3_stmt* st) { out = DeviceRow(st); }));
    return out;
  }

  Result<std::vector<Device>> ListDevices() override {
    std::vector<Device> out;
    QP_RETURN_IF_ERROR(
        Query(std::string("SELECT ") + kDeviceColumns + " FROM fleet_devices ORDER BY enrolled", {},
              [&](sqlite3_stmt* st) { out.push_back(DeviceRow(st)); }));
    return out;
  }

  Status SetDeviceStatus(const std::string& install_id, const std::string& status) override {
    std::lock_guard<std::mutex> lock(mu_);
    QP_RETURN_IF_ERROR(QueryLocked("UPDATE fleet_devices SET status = ? WHERE install_id = ?",
                                   {status, install_id}, [](sqlite3_stmt*) {}));
    if (sqlite3_changes(db_) == 0) return Error(ErrorCode::kNotFound, "no device " + install_id);
    return OkStatus();
  }

  Result<int> RevokeEnrollment(const std::string& id) override {
    std::lock_guard<std::mutex> lock(mu_);
    QP_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
    Status s =
        QueryLocked("UPDATE enrollments SET revoked = 1 WHERE id = ?", {id}, [](sqlite3_stmt*) {});
    bool found = s.ok() && sqlite3_changes(db_) > 0;
    int devices = 0;
    if (s.ok() && found) {
      s = QueryLocked("UPDATE fleet_devices SET status = 'revoked' WHERE enrollment_id = ?", {id},
                      [](sqlite3_stmt*) {});
      devices = sqlite3_changes(db_);
    }
    if (!s.ok() || !found) {
      (void)Exec("ROLLBACK");
      if (!s.ok()) return s.error();
      return Error(ErrorCode::kNotFound, "no enrollment " + id);
    }
    QP_RETURN_IF_ERROR(Exec("COMMIT"));
    return devices;
  }

  Result<std::map<std::string, std::map<std::string, int>>> DeviceCounts() override {
    std::map<std::string, std::map<std::string, int>> out;
    QP_RETURN_IF_ERROR(Query(
        "SELECT d.improvement_id, d.state, COUNT(*) FROM devices d JOIN fleet_devices f "
        "ON f.install_id = d.install_id WHERE f.status = 'accepted' GROUP BY 1, 2",
        {}, [&](sqlite3_stmt* st) { out[Col(st, 0)][Col(st, 1)] = sqlite3_column_int(st, 2); }));
    return out;
  }

  Result<std::vector<std::pair<std::string, int>>> FailureReasons(const std::string& id,
                                                                  int limit) override {
    std::vector<std::pair<std::string, int>> out;
    QP_RETURN_IF_ERROR(Query(
        "SELECT d.error, COUNT(*) FROM devices d JOIN fleet_devices f ON f.install_id = "
        "d.install_id WHERE f.status = 'accepted' AND d.improvement_id = ? AND d.state IN "
        "('failed','rolled_back') GROUP BY d.error ORDER BY 2 DESC LIMIT " +
            std::to_string(limit),
        {id}, [&](sqlite3_stmt* st) { out.emplace_back(Col(st, 0), sqlite3_column_int(st, 1)); }));
    return out;
  }

  Result<std::vector<std::pair<std::int64_t, int>>> ProtectedSeries(
      const std::string& id) override {
    auto parsed = contract::ImprovementId::Parse(id);
    if (!parsed.ok()) return std::vector<std::pair<std::int64_t, int>>();
    std::vector<std::int64_t> times;
    QP_RETURN_IF_ERROR(Query(
        "SELECT MIN(e.time) FROM events e JOIN fleet_devices f ON f.install_id = e.install_id "
        "WHERE f.status = 'accepted' AND e.component = ? AND e.base = ? AND e.improvement = ? "
        "AND e.state = 'protected' GROUP BY e.install_id ORDER BY 1",
        {parsed->component, parsed->base, parsed->label},
        [&](sqlite3_stmt* st) { times.push_back(sqlite3_column_int64(st, 0)); }));
    std::vector<std::pair<std::int64_t, int>> out;
    for (std::size_t i = 0; i < times.size(); ++i)
      out.emplace_back(times[i], static_cast<int>(i + 1));
    return out;
  }

  Result<std::int64_t> CountEvents() override {
    std::int64_t n = 0;
    QP_RETURN_IF_ERROR(Query("SELECT COUNT(*) FROM events", {},
                             [&](sqlite3_stmt* st) { n = sqlite3_column_int64(st, 0); }));
    return n;
  }

  Status Clear() override {
    std::lock_guard<std::mutex> lock(mu_);
    return Exec(
        "DELETE FROM events; DELETE FROM devices; DELETE FROM fleet_devices; "
        "DELETE FROM enrollments;");
  }

 private:
  sqlite3* db_;
  std::mutex mu_;
};

}  // namespace

Result<std::unique_ptr<ReportStore>> OpenSqliteReportStore(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : "out of memory";
    sqlite3_close(db);
    return Error(ErrorCode::kIo, "sqlite: open " + path + ": " + msg);
  }
  sqlite3_busy_timeout(db, 5000);
  auto store = std::make_unique<SqliteReportStore>(db);
  QP_RETURN_IF_ERROR(store->Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"));
  QP_RETURN_IF_ERROR(store->Exec(kSchema));
  return std::unique_ptr<ReportStore>(std::move(store));
}

}  // namespace qp::server
