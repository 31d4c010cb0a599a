// The PostgreSQL backend of ReportStore (libpq): for fleets beyond one machine; several
// server instances may share the database. One connection per store, guarded by a mutex.
// Reports and nonce claims go through a group commit (group_commit.h): the requests that
// arrive while a batch is being written are written together in the next one, by the
// writer thread, as one statement (postgres_report_batch.h); each caller returns, or its
// `done` is called, once its part is committed.
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "contract/improvement_id.h"
#include "online/pg_connection.h"
#include "server/group_commit.h"
#include "server/postgres_report_batch.h"
#include "server/report_store.h"

namespace qp::server {
namespace {

using online::PgConnection;
using online::PgResult;

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
DROP INDEX IF EXISTS events_protected;
CREATE INDEX IF NOT EXISTS events_protected_at ON events (component, base, improvement,
  install_id, time) WHERE state = 'protected';
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
CREATE TABLE IF NOT EXISTS event_counts (install_id TEXT PRIMARY KEY, n BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS nonces_time ON nonces (time);
)SQL";

// Requests written in one transaction at most (a report holds at most 500 events).
constexpr std::size_t kMaxBatch = 256;

constexpr const char* kEnrollmentColumns =
    "id, secret_sha256, max_uses, used, created, expires, require_accept, revoked, note";
constexpr const char* kDeviceColumns = "install_id, public_key, enrollment_id, status, enrolled";

class PostgresReportStore final : public ReportStore, public AuditTable {
 public:
  explicit PostgresReportStore(std::unique_ptr<PgConnection> conn)
      : conn_(std::move(conn)),
        group_([this](const std::vector<PendingReport*>& batch) { Write(batch); }, kMaxBatch) {}

  Result<PgResult> Exec(const std::string& sql, const std::vector<std::string>& args = {}) {
    return conn_->Exec(sql, args);
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

  Status Init() { return conn_->CreateSchema(kSchema); }

  Result<int> Store(const std::vector<StoredEvent>& events, std::int64_t received) override {
    PendingReport p = PendingReport::Of(events, received, nullptr);
    group_.Submit(&p);
    return p.Stored();
  }

  Result<int> StoreClaimed(const std::vector<StoredEvent>& events, std::int64_t received,
                           const NonceClaim& claim) override {
    PendingReport p = PendingReport::Of(events, received, &claim);
    group_.Submit(&p);
    return p.Stored();
  }

  void StoreAsync(std::vector<StoredEvent> events, std::int64_t received,
                  std::optional<NonceClaim> claim, std::function<void(Result<int>)> done) override {
    // The report and its claim live with their pending write until it is done.
    struct Job {
      std::vector<StoredEvent> events;
      std::optional<NonceClaim> claim;
      PendingReport p;
    };
    auto job = std::make_shared<Job>();
    job->events = std::move(events);
    job->claim = std::move(claim);
    job->p = PendingReport::Of(job->events, received, job->claim ? &*job->claim : nullptr);
    group_.SubmitAsync(&job->p, [job, done = std::move(done)] { done(job->p.Stored()); });
  }

  void Flush() override { group_.Flush(); }

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
    auto parsed = contract::ImprovementId::Parse(id);
    if (!parsed.ok()) return std::vector<std::pair<std::int64_t, int>>();
    std::lock_guard<std::mutex> lock(mu_);
    QP_ASSIGN_OR_RETURN(auto r, Exec("SELECT MIN(e.time) FROM events e JOIN fleet_devices f ON "
                                     "f.install_id = e.install_id WHERE f.status = 'accepted' AND "
                                     "e.component = $1 AND e.base = $2 AND e.improvement = $3 AND "
                                     "e.state = 'protected' GROUP BY e.install_id ORDER BY 1",
                                     {parsed->component, parsed->base, parsed->label}));
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
    PendingReport p;
    p.nonce = &key;
    p.time = now;
    p.forget_before = forget_before;
    group_.Submit(&p);
    if (!p.status.ok()) return p.status.error();
    return p.fresh;
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
    QP_RETURN_IF_ERROR(Exec("DELETE FROM event_counts"));
    QP_RETURN_IF_ERROR(Exec("DELETE FROM events"));
    QP_RETURN_IF_ERROR(Exec("DELETE FROM devices"));
    QP_RETURN_IF_ERROR(Exec("DELETE FROM fleet_devices"));
    QP_RETURN_IF_ERROR(Exec("DELETE FROM enrollments"));
    return OkStatus();
  }

 private:
  // One group commit's batch (postgres_report_batch.h), on the connection.
  void Write(const std::vector<PendingReport*>& batch) {
    std::lock_guard<std::mutex> lock(mu_);
    batch_writer_.Write(batch);
  }

  std::unique_ptr<PgConnection> conn_;
  std::mutex mu_;  // the connection
  ReportBatchWriter batch_writer_{conn_.get()};
  GroupCommit<PendingReport> group_;
};

}  // namespace

Result<std::unique_ptr<ReportStore>> OpenPostgresReportStore(const std::string& conninfo) {
  QP_ASSIGN_OR_RETURN(auto conn, PgConnection::Open(conninfo));
  auto store = std::make_unique<PostgresReportStore>(std::move(conn));
  QP_RETURN_IF_ERROR(store->Init());
  return std::unique_ptr<ReportStore>(std::move(store));
}

}  // namespace qp::server
