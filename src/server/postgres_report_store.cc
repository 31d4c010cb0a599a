// The PostgreSQL backend of ReportStore (libpq): for fleets beyond one machine; several
// server instances may share the database. One connection per store, guarded by a mutex.
// Reports and nonce claims go through a group commit (group_commit.h): the requests that
// arrive while a transaction is being written are written together in the next one, as one
// statement (set-based, from arrays: one round trip a batch), and each caller returns once
// its part is committed. A batch that fails is written again one request at a time, so a
// request the database refuses fails alone.
#include <algorithm>
#include <map>
#include <mutex>
#include <set>
#include <tuple>

#include <spdlog/spdlog.h>

#include "online/pg_connection.h"
#include "server/group_commit.h"
#include "server/report_store.h"

namespace qp::server {
namespace {

using online::IntArray;
using online::PgConnection;
using online::PgResult;
using online::TextArray;

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
CREATE TABLE IF NOT EXISTS event_counts (install_id TEXT PRIMARY KEY, n BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS nonces_time ON nonces (time);
)SQL";

// A claim in this many prunes the nonces past the replay window.
constexpr int kPruneEvery = 1000;
// Requests written in one transaction at most (a report holds at most 500 events).
constexpr std::size_t kMaxBatch = 256;

// A report or a nonce claim waiting for the next group commit, with its outcome.
struct Pending {
  const std::vector<StoredEvent>* events = nullptr;  // a report, and/or
  const std::string* nonce = nullptr;  // a nonce claim (a report's is stored only if fresh)
  std::int64_t time = 0;               // received, or claimed at
  std::int64_t forget_before = 0;      // nonces older than this may go
  Status status;
  int stored = 0;      // a report: events new to the database
  bool fresh = false;  // a claim: the nonce was not claimed before
};

constexpr const char* kEnrollmentColumns =
    "id, secret_sha256, max_uses, used, created, expires, require_accept, revoked, note";
constexpr const char* kDeviceColumns = "install_id, public_key, enrollment_id, status, enrolled";

class PostgresReportStore final : public ReportStore, public AuditTable {
 public:
  explicit PostgresReportStore(std::unique_ptr<PgConnection> conn)
      : conn_(std::move(conn)),
        group_([this](const std::vector<Pending*>& batch) { Write(batch); }, kMaxBatch) {}

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
    Pending p;
    p.events = &events;
    p.time = received;
    group_.Submit(&p);
    if (!p.status.ok()) return p.status.error();
    return p.stored;
  }

  Result<int> StoreClaimed(const std::vector<StoredEvent>& events, std::int64_t received,
                           const NonceClaim& claim) override {
    Pending p;
    p.events = &events;
    p.nonce = &claim.key;
    p.time = received;
    p.forget_before = claim.forget_before;
    group_.Submit(&p);
    if (!p.status.ok()) return p.status.error();
    if (!p.fresh) return Error(ErrorCode::kAlreadyExists, "replayed request");
    return p.stored;
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
    Pending p;
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
  // One group commit's batch: one transaction; when it fails, each request alone.
  void Write(const std::vector<Pending*>& batch) {
    std::lock_guard<std::mutex> lock(mu_);
    Status all = WriteTransaction(batch);
    if (all.ok() || batch.size() == 1) {
      for (Pending* p : batch) p->status = all;
      return;
    }
    for (Pending* p : batch) p->status = WriteTransaction({p});
  }

  // One batch in one statement (one round trip, its own transaction): the nonces claimed,
  // the events inserted, each device's latest state per improvement upserted (its highest
  // new seq) and its event count raised, all from the rows that were new. What comes back
  // says which nonces were fresh, which events were new, and which devices are past their
  // history; their oldest events are pruned after, on their own.
  Status WriteTransaction(const std::vector<Pending*>& batch) {
    for (Pending* p : batch) p->stored = 0, p->fresh = false;
    // In key order, as every instance writes them: concurrent batches do not deadlock. A
    // nonce twice in the batch is inserted once and fresh for the first claim only; the
    // first request with an (install id, seq) owns it, a copy in a later one is not new.
    std::map<std::string, std::int64_t> claims;
    std::int64_t forget_before = INT64_MAX;
    std::map<std::pair<std::string, std::int64_t>, std::pair<const StoredEvent*, Pending*>> rows;
    for (Pending* p : batch) {
      // A report whose nonce another request of the batch claims first is a replay.
      bool first_claim = true;
      if (p->nonce != nullptr) {
        first_claim = claims.emplace(*p->nonce, p->time).second;
        forget_before = std::min(forget_before, p->forget_before);
      }
      if (p->events == nullptr || !first_claim) continue;
      for (const auto& e : *p->events)
        rows.emplace(std::make_pair(e.install_id, e.seq), std::make_pair(&e, p));
    }
    if (claims.empty() && rows.empty()) return OkStatus();
    if (!claims.empty() && claims_ / kPruneEvery != (claims_ + claims.size()) / kPruneEvery) {
      QP_RETURN_IF_ERROR(
          Exec("DELETE FROM nonces WHERE time < $1", {std::to_string(forget_before)}));
    }
    std::vector<std::string> keys;
    std::vector<std::int64_t> claimed_at;
    for (const auto& [key, time] : claims) keys.push_back(key), claimed_at.push_back(time);
    std::vector<std::string> cols[9];  // install_id, component, platform, base, improvement,
                                       // state, error, restart_needed, agent_version
    std::vector<std::int64_t> seqs, times, received;
    std::vector<std::string> nonces;  // the row's request's, stored only if fresh; or ""
    for (const auto& [key, row] : rows) {
      const StoredEvent& e = *row.first;
      nonces.push_back(row.second->nonce != nullptr ? *row.second->nonce : "");
      int c = 0;
      for (const std::string* v :
           {&e.install_id, &e.component, &e.platform, &e.base, &e.improvement, &e.state, &e.error,
            &e.restart_needed, &e.agent_version}) {
        cols[c++].push_back(*v);
      }
      seqs.push_back(e.seq);
      times.push_back(e.time);
      received.push_back(row.second->time);
    }
    QP_ASSIGN_OR_RETURN(
        auto r,
        Exec("WITH n AS (INSERT INTO nonces (key, time) SELECT * FROM unnest($1::text[], "
             "$2::bigint[]) ON CONFLICT DO NOTHING RETURNING key), "
             "e AS (INSERT INTO events SELECT install_id, seq, time, component, platform, base, "
             "improvement, state, error, restart_needed, agent_version, received FROM "
             "unnest($3::text[], $4::bigint[], $5::bigint[], $6::text[], $7::text[], $8::text[], "
             "$9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::bigint[], "
             "$15::text[]) AS u(install_id, seq, time, component, platform, base, improvement, "
             "state, error, restart_needed, agent_version, received, nonce) WHERE u.nonce = '' "
             "OR u.nonce IN (SELECT key FROM n) ON CONFLICT (install_id, seq) DO NOTHING "
             "RETURNING install_id, seq, time, component, base, improvement, state, error), "
             "d AS (INSERT INTO devices SELECT DISTINCT ON (install_id, id) install_id, id, state, "
             "error, seq, time FROM (SELECT *, component || '/' || base || '/' || improvement AS "
             "id FROM e WHERE improvement <> '') x ORDER BY install_id, id, seq DESC "
             "ON CONFLICT (install_id, improvement_id) DO UPDATE SET state=excluded.state, "
             "error=excluded.error, seq=excluded.seq, updated=excluded.updated WHERE "
             "excluded.seq > devices.seq), "
             "c AS (INSERT INTO event_counts SELECT install_id, COUNT(*) FROM e GROUP BY "
             "install_id ORDER BY install_id ON CONFLICT (install_id) DO UPDATE SET n = "
             "event_counts.n + excluded.n RETURNING install_id, n) "
             "SELECT 'n', key, 0 FROM n UNION ALL SELECT 'e', install_id, seq FROM e UNION ALL "
             "SELECT 'c', install_id, n FROM c WHERE n > " +
                 std::to_string(kHistoryPerDevice),
             {TextArray(keys), IntArray(claimed_at), TextArray(cols[0]), IntArray(seqs),
              IntArray(times), TextArray(cols[1]), TextArray(cols[2]), TextArray(cols[3]),
              TextArray(cols[4]), TextArray(cols[5]), TextArray(cols[6]), TextArray(cols[7]),
              TextArray(cols[8]), IntArray(received), TextArray(nonces)}));
    claims_ += keys.size();
    std::set<std::string> fresh;
    std::vector<std::string> over;
    for (int i = 0; i < PQntuples(r.get()); ++i) {
      const char kind = PQgetvalue(r.get(), i, 0)[0];
      const char* id = PQgetvalue(r.get(), i, 1);
      if (kind == 'n') {
        fresh.insert(id);
      } else if (kind == 'c') {
        over.emplace_back(id);
      } else {
        auto it = rows.find({id, std::atoll(PQgetvalue(r.get(), i, 2))});
        if (it == rows.end())
          return Error(ErrorCode::kInternal, "postgresql: an unknown row came back");
        ++it->second.second->stored;
      }
    }
    for (Pending* p : batch) {
      if (p->nonce != nullptr) p->fresh = fresh.erase(*p->nonce) > 0;
    }
    PruneHistories(over);
    return OkStatus();
  }

  // A bounded history per device: event_counts counts each device's events (from when the
  // table was made: a database from before counts from 0, so its devices are pruned a
  // little later); a device past kHistoryPerDevice loses its oldest. The events are stored
  // already: a prune that fails is tried again at the device's next report.
  void PruneHistories(std::vector<std::string> over) {
    if (over.empty()) return;
    std::sort(over.begin(), over.end());
    const std::string keep = std::to_string(kHistoryPerDevice);
    auto pruned = Exec(
        "WITH k AS (SELECT id, (SELECT seq FROM events WHERE install_id = id ORDER BY seq DESC "
        "OFFSET " +
            std::to_string(kHistoryPerDevice - 1) +
            " LIMIT 1) AS oldest FROM unnest($1::text[]) AS id), "
            "p AS (DELETE FROM events e USING k WHERE e.install_id = k.id AND e.seq < k.oldest) "
            "UPDATE event_counts SET n = " +
            keep + " WHERE install_id = ANY($1::text[])",
        {TextArray(over)});
    if (!pruned.ok()) spdlog::warn("reports: pruning old events: {}", pruned.error().ToString());
  }

  std::unique_ptr<PgConnection> conn_;
  std::mutex mu_;  // the connection
  std::uint64_t claims_ = 0;
  GroupCommit<Pending> group_;
};

}  // namespace

Result<std::unique_ptr<ReportStore>> OpenPostgresReportStore(const std::string& conninfo) {
  QP_ASSIGN_OR_RETURN(auto conn, PgConnection::Open(conninfo));
  auto store = std::make_unique<PostgresReportStore>(std::move(conn));
  QP_RETURN_IF_ERROR(store->Init());
  return std::unique_ptr<ReportStore>(std::move(store));
}

}  // namespace qp::server
