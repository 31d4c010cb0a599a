// The PostgreSQL backend of ReportStore (libpq): for fleets beyond one machine; several
// server instances may share the database. One connection per store, guarded by a mutex;
// every Store is one transaction, committed before it returns.
#include <libpq-fe.h>

#include <mutex>
#include <set>

#include "server/report_store.h"

namespace qp::server {
namespace {

constexpr const char* kSchema = R"SQL(
CREATE TABLE IF NOT EXISTS events (
  install_id TEXT NOT NULL, seq BIGINT NOT NULL, time BIGINT NOT NULL,
  component TEXT NOT NULL, platform TEXT NOT NULL, base TEXT NOT NULL,
  improvement TEXT NOT NULL, state TEXT NOT NULL, error TEXT NOT NULL,
  restart_needed TEXT NOT NULL, agent_version TEXT NOT NULL, received BIGINT NOT NULL,
  PRIMARY KEY (install_id, seq));
CREATE TABLE IF NOT EXISTS devices (
  install_id TEXT NOT NULL, improvement_id TEXT NOT NULL, state TEXT NOT NULL,
  error TEXT NOT NULL, seq BIGINT NOT NULL, updated BIGINT NOT NULL,
  PRIMARY KEY (install_id, improvement_id));
CREATE INDEX IF NOT EXISTS events_protected ON events (component, base, improvement, state);
CREATE TABLE IF NOT EXISTS enrollments (
  id TEXT PRIMARY KEY, secret_sha256 TEXT NOT NULL, max_uses INTEGER NOT NULL,
  used INTEGER NOT NULL, created BIGINT NOT NULL, expires BIGINT NOT NULL,
  require_accept BOOLEAN NOT NULL, revoked BOOLEAN NOT NULL, note TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS fleet_devices (
  install_id TEXT PRIMARY KEY, public_key TEXT NOT NULL, enrollment_id TEXT NOT NULL,
  status TEXT NOT NULL, enrolled BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS fleet_devices_enrollment ON fleet_devices (enrollment_id);
CREATE TABLE IF NOT EXISTS audit (
  id BIGSERIAL PRIMARY KEY, time BIGINT NOT NULL, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS nonces (key TEXT PRIMARY KEY, time BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS nonces_time ON nonces (time);
)SQL";

// A claim in this many prunes the nonces past the replay window.
constexpr int kPruneEvery = 1000;

constexpr const char* kEnrollmentColumns =
    "id, secret_sha256, max_uses, used, created, expires, require_accept, revoked, note";
constexpr const char* kDeviceColumns = "install_id, public_key, enrollment_id, status, enrolled";

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, ResultDeleter>;

class PostgresReportStore final : public ReportStore, public AuditTable {
 public:
  explicit PostgresReportStore(PGconn* conn) : conn_(conn) {}
  ~PostgresReportStore() override { PQfinish(conn_); }

  Error Fail(const std::string& what) {
    return Error(ErrorCode::kIo, "postgresql: " + what + ": " + PQerrorMessage(conn_));
  }

  Result<PgResult> Exec(const std::string& sql, const std::vector<std::string>& args = {}) {
    std::vector<const char*> values;
    for (const auto& a : args) values.push_back(a.c_str());
    // Without parameters PQexec, which also runs several statements (the schema).
    PgResult r(values.empty() ? PQexec(conn_, sql.c_str())
                              : PQexecParams(conn_, sql.c_str(), static_cast<int>(values.size()),
                                             nullptr, values.data(), nullptr, nullptr, 0));
    ExecStatusType st = PQresultStatus(r.get());
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      if (PQstatus(conn_) == CONNECTION_BAD) PQreset(conn_);
      return Fail(sql.substr(0, 40));
    }
    return r;
  }

  static Enrollment EnrollmentRow(PGresult* r, int i) {
    Enrollment e;
    e.id = PQgetvalue(r, i, 0);
    e.secret_sha256 = PQgetvalue(r, i, 1);
    e.max_uses = std::atoi(PQgetvalue(r, i, 2));
    e.used = std::atoi(PQgetvalue(r, i, 3));
    e.created = std::atoll(PQgetvalue(r, i, 4));
    e.expires = std::atoll(PQgetvalue(r, i, 5));
    e.require_accept = PQgetvalue(r, i, 6)[0] == 't';
    e.revoked = PQgetvalue(r, i, 7)[0] == 't';
    e.note = PQgetvalue(r, i, 8);
    return e;
  }

  static Device DeviceRow(PGresult* r, int i) {
    return Device{PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
                  PQgetvalue(r, i, 3), std::atoll(PQgetvalue(r, i, 4))};
  }

  Status AddEnrollment(const Enrollment& e) override {
    std::lock_guard<std::mutex> lock(mu_);
    QP_RETURN_IF_ERROR(
        Exec(std::string("INSERT INTO enrollments (") + kEnrollmentColumns +
                 ") VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9)",
             {e.id, e.secret_sha256, std::to_string(e.max_uses), std::to_string(e.used),
              std::to_string(e.created), std::to_string(e.expires),
              e.require_accept ? "true" : "false", e.revoked ? "true" : "false", e.note}));
    return OkStatus();
  }

  Result<std::optional<Enrollment>> FindEnrollment(const std::string& id) override {
    std::lock_guard<std::mutex> lock(mu_);
    QP_ASSIGN_OR_RETURN(auto r, Exec(std::string("SELECT ") + kEnrollmentColumns +
                                         " FROM enrollments WHERE id = $1",
                                     {id}));
    if (PQntuples(r.get()) == 0) return std::optional<Enrollment>();
    return std::optional<Enrollment>(EnrollmentRow(r.get(), 0));
  }

  Result<std::vector<Enrollment>> ListEnrollments() override {
    std::lock_guard<std::mutex> lock(mu_);
    QP_ASSIGN_OR_RETURN(auto r, Exec(std::string("SELECT ") + kEnrollmentColumns +
                                     " FROM enrollments ORDER BY created"));
    std::vector<Enrollment> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) out.push_back(EnrollmentRow(r.get(), i));
    return out;
  }

  Result<Device> Enroll(const std::string& enrollment_id, const std::string& install_id,
                        const std::string& public_key, std::int64_t now) override {
    std::lock_guard<std::mutex> lock(mu_);
    QP_RETURN_IF_ERROR(Exec("BEGIN"));
    auto done = [&]() -> Result<Device> {
      // The row lock orders concurrent enrollments with the same token (its use count).
      QP_ASSIGN_OR_RETURN(auto er, Exec(std::string("SELECT ") + kEnrollmentColumns +
                                            " FROM enrollments WHERE id = $1 FOR UPDATE",
                                        {enrollment_id}));
      std::optional<Enrollment> e;
      if (PQntuples(er.get()) > 0) e = EnrollmentRow(er.get(), 0);
      QP_ASSIGN_OR_RETURN(auto dr, Exec(std::string("SELECT ") + kDeviceColumns +
                                            " FROM fleet_devices WHERE install_id = $1",
                                        {install_id}));
      std::optional<Device> known;
      if (PQntuples(dr.get()) > 0) known = DeviceRow(dr.get(), 0);
      QP_ASSIGN_OR_RETURN(Device d, DecideEnrollment(e, known, install_id, public_key, now));
      if (known) return d;
      QP_RETURN_IF_ERROR(
          Exec("UPDATE enrollments SET used = used + 1 WHERE id = $1", {enrollment_id}));
      QP_RETURN_IF_ERROR(Exec(
          std::string("INSERT INTO fleet_devices (") + kDeviceColumns + ") VALUES ($1,$2,$3,$4,$5)",
          {d.install_id, d.public_key, d.enrollment_id, d.status, std::to_string(d.enrolled)}));
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
    std::lock_guard<std::mutex> lock(mu_);
    QP_ASSIGN_OR_RETURN(auto r, Exec(std::string("SELECT ") + kDeviceColumns +
                                         " FROM fleet_devices WHERE install_id = $1",
                                     {install_id}));
    if (PQntuples(r.get()) == 0) return std::optional<Device>();
    return std::optional<Device>(DeviceRow(r.get(), 0));
  }

  Result<std::vector<Device>> ListDevices() override {
    std::lock_guard<std::mutex> lock(mu_);
    QP_ASSIGN_OR_RETURN(auto r, Exec(std::string("SELECT ") + kDeviceColumns +
                                     " FROM fleet_devices ORDER BY enrolled"));
    std::vector<Device> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) out.push_back(DeviceRow(r.get(), i));
    return out;
  }

  Status SetDeviceStatus(const std::string& install_id, const std::string& status) override {
    std::lock_guard<std::mutex> lock(mu_);
    QP_ASSIGN_OR_RETURN(auto r, Exec("UPDATE fleet_devices SET status = $1 WHERE install_id = $2",
                                     {status, install_id}));
    if (std::string(PQcmdTuples(r.get())) == "0") {
      return Error(ErrorCode::kNotFound, "no device " + install_id);
    }
    return OkStatus();
  }

  Result<int> RevokeEnrollment(const std::string& id) override {
    std::lock_guard<std::mutex> lock(mu_);
    QP_RETURN_IF_ERROR(Exec("BEGIN"));
    auto done = [&]() -> Result<int> {
      QP_ASSIGN_OR_RETURN(auto e,
                          Exec("UPDATE enrollments SET revoked = true WHERE id = $1", {id}));
      if (std::string(PQcmdTuples(e.get())) == "0") {
        return Error(ErrorCode::kNotFound, "no enrollment " + id);
      }
      QP_ASSIGN_OR_RETURN(
          auto d,
          Exec("UPDATE fleet_devices SET status = 'revoked' WHERE enrollment_id = $1", {id}));
      return std::atoi(PQcmdTuples(d.get()));
    }();
    if (!done.ok()) {
      (void)Exec("ROLLBACK");
      return done.error();
    }
    QP_RETURN_IF_ERROR(Exec("COMMIT"));
    return done;
  }

  Status Init() {
    // Concurrent servers may create the schema at once: serialise on an advisory lock.
    QP_RETURN_IF_ERROR(Exec("SELECT pg_advisory_lock(7391)"));
    auto r = Exec(kSchema);
    (void)Exec("SELECT pg_advisory_unlock(7391)");
    if (!r.ok()) return r.error();
    return OkStatus();
  }

  Result<int> Store(const std::vector<StoredEvent>& events, std::int64_t received) override {
    std::lock_guard<std::mutex> lock(mu_);
    QP_RETURN_IF_ERROR(Exec("BEGIN"));
    int stored = 0;
    for (const auto& e : events) {
      auto r = Exec(
          "INSERT INTO events VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) "
          "ON CONFLICT (install_id, seq) DO NOTHING",
          {e.install_id, std::to_string(e.seq), std::to_string(e.time), e.component, e.platform,
           e.base, e.improvement, e.state, e.error, e.restart_needed, e.agent_version,
           std::to_string(received)});
      if (!r.ok()) {
        (void)Exec("ROLLBACK");
        return r.error();
      }
      if (std::string(PQcmdTuples(r->get())) != "1") continue;
      ++stored;
      std::string id = e.ImprovementId();
      if (id.empty()) continue;
      auto u = Exec(
          "INSERT INTO devices VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT (install_id, improvement_id) "
          "DO UPDATE SET state=excluded.state, error=excluded.error, seq=excluded.seq, "
          "updated=excluded.updated WHERE excluded.seq > devices.seq",
          {e.install_id, id, e.state, e.error, std::to_string(e.seq), std::to_string(e.time)});
      if (!u.ok()) {
        (void)Exec("ROLLBACK");
        return u.error();
      }
    }
    // A bounded history per device.
    std::set<std::string> ids;
    for (const auto& e : events) ids.insert(e.install_id);
    for (const auto& id : ids) {
      auto pruned = Exec(
          "DELETE FROM events WHERE install_id = $1 AND seq < (SELECT MIN(seq) FROM (SELECT seq "
          "FROM events WHERE install_id = $1 ORDER BY seq DESC LIMIT " +
              std::to_string(kHistoryPerDevice) + ") AS recent)",
          {id});
      if (!pruned.ok()) {
        (void)Exec("ROLLBACK");
        return pruned.error();
      }
    }
    QP_RETURN_IF_ERROR(Exec("COMMIT"));
    return stored;
  }

  Result<std::map<std::string, std::map<std::string, int>>> DeviceCounts() override {
    std::lock_guard<std::mutex> lock(mu_);
    QP_ASSIGN_OR_RETURN(auto r,
                        Exec("SELECT d.improvement_id, d.state, COUNT(*) FROM devices d JOIN "
                             "fleet_devices f ON f.install_id = d.install_id WHERE f.status = "
                             "'accepted' GROUP BY 1, 2"));
    std::map<std::string, std::map<std::string, int>> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      out[PQgetvalue(r.get(), i, 0)][PQgetvalue(r.get(), i, 1)] =
          std::atoi(PQgetvalue(r.get(), i, 2));
    }
    return out;
  }

  Result<std::vector<std::pair<std::string, int>>> FailureReasons(const std::string& id,
                                                                  int limit) override {
    std::lock_guard<std::mutex> lock(mu_);
    QP_ASSIGN_OR_RETURN(auto r,
                        Exec("SELECT d.error, COUNT(*) FROM devices d JOIN fleet_devices f ON "
                             "f.install_id = d.install_id WHERE f.status = 'accepted' AND "
                             "d.improvement_id = $1 AND d.state IN ('failed','rolled_back') "
                             "GROUP BY d.error ORDER BY 2 DESC LIMIT " +
                                 std::to_string(limit),
                             {id}));
    std::vector<std::pair<std::string, int>> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      out.emplace_back(PQgetvalue(r.get(), i, 0), std::atoi(PQgetvalue(r.get(), i, 1)));
    }
    return out;
  }

  Result<std::vector<std::pair<std::int64_t, int>>> ProtectedSeries(
      const std::string& id) override {
    std::lock_guard<std::mutex> lock(mu_);
    QP_ASSIGN_OR_RETURN(auto r,
                        Exec("SELECT MIN(e.time) FROM events e JOIN fleet_devices f ON "
                             "f.install_id = e.install_id WHERE f.status = 'accepted' AND "
                             "e.component || '/' || e.base || '/' || e.improvement = $1 AND "
                             "e.state = 'protected' GROUP BY e.install_id ORDER BY 1",
                             {id}));
    std::vector<std::pair<std::int64_t, int>> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      out.emplace_back(std::atoll(PQgetvalue(r.get(), i, 0)), i + 1);
    }
    return out;
  }

  Result<std::int64_t> CountEvents() override {
    std::lock_guard<std::mutex> lock(mu_);
    QP_ASSIGN_OR_RETURN(auto r, Exec("SELECT COUNT(*) FROM events"));
    return static_cast<std::int64_t>(std::atoll(PQgetvalue(r.get(), 0, 0)));
  }

  AuditTable* audit_table() override { return this; }

  bool SharesNonces() const override { return true; }

  Result<bool> ClaimNonce(const std::string& key, std::int64_t now,
                          std::int64_t forget_before) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (++claims_ % kPruneEvery == 0) {
      QP_RETURN_IF_ERROR(
          Exec("DELETE FROM nonces WHERE time < $1", {std::to_string(forget_before)}));
    }
    QP_ASSIGN_OR_RETURN(auto r, Exec("INSERT INTO nonces (key, time) VALUES ($1, $2) ON CONFLICT "
                                     "DO NOTHING",
                                     {key, std::to_string(now)}));
    return std::string_view(PQcmdTuples(r.get())) == "1";
  }

  Status AppendAudit(std::int64_t time, const std::string& record) override {
    std::lock_guard<std::mutex> lock(mu_);
    QP_RETURN_IF_ERROR(
        Exec("INSERT INTO audit (time, record) VALUES ($1, $2)", {std::to_string(time), record}));
    return OkStatus();
  }

  Result<std::vector<std::string>> RecentAudit(int limit) override {
    std::lock_guard<std::mutex> lock(mu_);
    QP_ASSIGN_OR_RETURN(auto r, Exec("SELECT record FROM (SELECT id, record FROM audit ORDER BY "
                                     "id DESC LIMIT $1) newest ORDER BY id",
                                     {std::to_string(limit)}));
    std::vector<std::string> out;
    for (int i = 0; i < PQntuples(r.get()); ++i) out.emplace_back(PQgetvalue(r.get(), i, 0));
    return out;
  }

  Status Clear() override {
    std::lock_guard<std::mutex> lock(mu_);
    QP_RETURN_IF_ERROR(Exec("DELETE FROM audit"));
    QP_RETURN_IF_ERROR(Exec("DELETE FROM nonces"));
    QP_RETURN_IF_ERROR(Exec("DELETE FROM events"));
    QP_RETURN_IF_ERROR(Exec("DELETE FROM devices"));
    QP_RETURN_IF_ERROR(Exec("DELETE FROM fleet_devices"));
    QP_RETURN_IF_ERROR(Exec("DELETE FROM enrollments"));
    return OkStatus();
  }

 private:
  PGconn* conn_;
  std::mutex mu_;
  std::uint64_t claims_ = 0;
};

}  // namespace

Result<std::unique_ptr<ReportStore>> OpenPostgresReportStore(const std::string& conninfo) {
  PGconn* conn = PQconnectdb(conninfo.c_str());
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(conn);
    PQfinish(conn);
    return Error(ErrorCode::kIo, "postgresql: connect: " + msg);
  }
  auto store = std::make_unique<PostgresReportStore>(conn);
  QP_RETURN_IF_ERROR(store->Init());
  return std::unique_ptr<ReportStore>(std::move(store));
}

}  // namespace qp::server
