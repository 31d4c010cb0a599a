// The PostgreSQL backend of ReportStore (libpq): for fleets beyond one machine; several
// server instances may share the database. One connection per store, guarded by a mutex;
// every Store is one transaction, committed before it returns.
#include <libpq-fe.h>

#include <mutex>

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
)SQL";

struct ResultDeleter {
  void operator()(PGresult* r) const { PQclear(r); }
};
using PgResult = std::unique_ptr<PGresult, ResultDeleter>;

class PostgresReportStore final : public ReportStore {
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
    QP_RETURN_IF_ERROR(Exec("COMMIT"));
    return stored;
  }

  Result<std::map<std::string, std::map<std::string, int>>> DeviceCounts() override {
    std::lock_guard<std::mutex> lock(mu_);
    QP_ASSIGN_OR_RETURN(auto r,
                        Exec("SELECT improvement_id, state, COUNT(*) FROM devices GROUP BY 1, 2"));
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
                        Exec("SELECT error, COUNT(*) FROM devices WHERE improvement_id = $1 AND "
                             "state IN ('failed','rolled_back') GROUP BY error ORDER BY 2 DESC "
                             "LIMIT " +
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
                        Exec("SELECT MIN(time) FROM events WHERE component || '/' || base || '/' "
                             "|| improvement = $1 AND state = 'protected' GROUP BY install_id "
                             "ORDER BY 1",
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

  Status Clear() override {
    std::lock_guard<std::mutex> lock(mu_);
    QP_RETURN_IF_ERROR(Exec("DELETE FROM events"));
    QP_RETURN_IF_ERROR(Exec("DELETE FROM devices"));
    return OkStatus();
  }

 private:
  PGconn* conn_;
  std::mutex mu_;
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
