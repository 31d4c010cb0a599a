#include "server/shared_repository.h"

#include <poll.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace qp::server {
namespace {

constexpr const char* kSignerChannel = "quietpatch_signer";
constexpr const char* kSchema = R"SQL(
CREATE TABLE IF NOT EXISTS signer_requests (
  id BIGSERIAL PRIMARY KEY, body TEXT NOT NULL, peer TEXT NOT NULL,
  created TIMESTAMPTZ NOT NULL DEFAULT now(), taken BOOLEAN NOT NULL DEFAULT false,
  done BOOLEAN NOT NULL DEFAULT false, status INTEGER, answer TEXT);
)SQL";
// The signer's lease: a session advisory lock.
constexpr const char* kLeaseKey = "7393";

}  // namespace

SharedRepository::SharedRepository(std::unique_ptr<online::RepoDb> db, Env* env, Clock* clock,
                                   std::string repo_dir, std::string instance, std::string conninfo,
                                   Options options)
    : db_(std::move(db)),
      env_(env),
      clock_(clock),
      dir_(std::move(repo_dir)),
      instance_(std::move(instance)),
      conninfo_(std::move(conninfo)),
      options_(options) {}

Result<std::unique_ptr<SharedRepository>> SharedRepository::Open(const std::string& conninfo,
                                                                 Env* env, Clock* clock,
                                                                 std::string repo_dir,
                                                                 std::string instance,
                                                                 Options options) {
  QP_ASSIGN_OR_RETURN(auto db, online::RepoDb::Open(conninfo));
  QP_RETURN_IF_ERROR(db->connection()->CreateSchema(kSchema));
  std::unique_ptr<SharedRepository> s(new SharedRepository(
      std::move(db), env, clock, std::move(repo_dir), std::move(instance), conninfo, options));
  // Everything, whatever the directory held (a change made here and never pushed, before
  // a crash, is overwritten by the database's copy).
  QP_ASSIGN_OR_RETURN(auto g, s->db_->Pull(env, s->dir_, 0));
  s->have_ = g.number;
  s->timestamp_version_ = g.timestamp_version;
  return s;
}

SharedRepository::~SharedRepository() { Stop(); }

void SharedRepository::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
  signer_ = false;
}

void SharedRepository::Start(Callbacks callbacks) {
  callbacks_ = std::move(callbacks);
  thread_ = std::thread([this] { Run(); });
}

bool SharedRepository::Connect() {
  signer_ = false;
  session_.reset();
  auto conn = online::PgConnection::Open(conninfo_);
  if (!conn.ok()) {
    spdlog::warn("shared repository: {}", conn.error().ToString());
    return false;
  }
  auto listening =
      (*conn)->Exec(std::string("LISTEN ") + online::kRepoChannel + "; LISTEN " + kSignerChannel);
  if (!listening.ok()) {
    spdlog::warn("shared repository: {}", listening.error().ToString());
    return false;
  }
  session_ = std::move(*conn);
  return true;
}

void SharedRepository::Sync(bool all) {
  std::lock_guard<std::mutex> lock(mu_);
  auto g = db_->Pull(env_, dir_, all ? 0 : have_.load());
  if (!g.ok()) {
    spdlog::error("shared repository: pull: {}", g.error().ToString());
    return;
  }
  have_ = g->number;
  if (g->timestamp_version != timestamp_version_) {
    timestamp_version_ = g->timestamp_version;
    if (callbacks_.on_published) callbacks_.on_published(g->timestamp_version);
  }
}

void SharedRepository::Run() {
  auto last_sync = clock_->Now(), next_try = clock_->Now(), last_tick = clock_->Now();
  bool pending_requests = true;
  while (!stop_) {
    if (session_ == nullptr || PQstatus(session_->raw()) != CONNECTION_OK) {
      if (signer_) spdlog::warn("shared repository: lost the signer's role with the connection");
      if (!Connect()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
        continue;
      }
      Sync(false);  // what was missed while the session was down
      last_sync = clock_->Now();
    }
    if (!signer_ && clock_->Now() >= next_try) {
      auto got = session_->Exec(std::string("SELECT pg_try_advisory_lock(") + kLeaseKey + ")");
      if (got.ok() && PQgetvalue(got->get(), 0, 0)[0] == 't') {
        signer_ = true;
        spdlog::info("shared repository: {} is the signer", instance_);
        Sync(false);
        pending_requests = true;
      }
      next_try = clock_->Now() + options_.lease_retry;
    }
    // Wait for a notification (or 200 ms), then take every one that came.
    pollfd p{PQsocket(session_->raw()), POLLIN, 0};
    if (p.fd >= 0) ::poll(&p, 1, 200);
    bool changed = false;
    if (PQconsumeInput(session_->raw()) == 0) continue;  // the connection broke
    while (PGnotify* n = PQnotifies(session_->raw())) {
      if (std::string(n->relname) == online::kRepoChannel) {
        changed = true;
      } else {
        pending_requests = true;
      }
      PQfreemem(n);
    }
    if (changed || clock_->Now() - last_sync >= options_.resync) {
      Sync(false);
      last_sync = clock_->Now();
    }
    if (signer_) {
      // A session that died while idle shows here, before the signer acts on it.
      if (!session_->Exec("SELECT 1").ok()) continue;
      if (pending_requests || clock_->Now() - last_tick >= std::chrono::seconds(1)) {
        AnswerRequests();
        pending_requests = false;
      }
      if (clock_->Now() - last_tick >= std::chrono::seconds(1)) {
        if (callbacks_.on_signer_tick) callbacks_.on_signer_tick();
        last_tick = clock_->Now();
      }
    }
  }
  if (session_ != nullptr && signer_) {
    (void)session_->Exec(std::string("SELECT pg_advisory_unlock(") + kLeaseKey + ")");
  }
}

Status SharedRepository::Change(const std::function<Status()>& change) {
  if (!signer_) {
    return Error(ErrorCode::kFailedPrecondition, "this instance is not the signer");
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto g = db_->Pull(env_, dir_, have_);
  if (!g.ok()) return g.error();
  have_ = g->number;
  QP_RETURN_IF_ERROR(change());
  auto pushed = db_->Push(env_, dir_, have_, instance_);
  if (!pushed.ok()) {
    // The directory holds a change the database refused: back to the database's copy.
    auto back = db_->Pull(env_, dir_, 0);
    if (back.ok()) have_ = back->number;
    return pushed.error();
  }
  have_ = pushed->number;
  timestamp_version_ = pushed->timestamp_version;
  if (callbacks_.on_published) callbacks_.on_published(pushed->timestamp_version);
  return OkStatus();
}

std::optional<ForwardedAnswer> SharedRepository::Forward(const std::string& body,
                                                         const std::string& peer) {
  std::string id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto* conn = db_->connection();
    auto made = conn->Exec("INSERT INTO signer_requests (body, peer) VALUES ($1, $2) RETURNING id",
                           {body, peer});
    if (!made.ok()) return ForwardedAnswer{503, R"({"error": "the database did not answer"})"};
    id = PQgetvalue(made->get(), 0, 0);
    (void)conn->Exec(std::string("SELECT pg_notify('") + kSignerChannel + "', $1)", {id});
  }
  // Withdrawn at the deadline unless the signer took it; once taken, its answer is
  // awaited (a change is never made without the operator hearing of it).
  auto deadline = clock_->Now() + options_.forward_timeout;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto* conn = db_->connection();
      if (clock_->Now() >= deadline) {
        auto withdrawn =
            conn->Exec("DELETE FROM signer_requests WHERE id = $1 AND NOT taken", {id});
        if (withdrawn.ok() && std::string_view(PQcmdTuples(withdrawn->get())) == "1") {
          return ForwardedAnswer{
              503, R"({"error": "no signer answered within the time allowed; try again"})"};
        }
      }
      auto r = conn->Exec("SELECT done, status, answer FROM signer_requests WHERE id = $1", {id});
      if (r.ok() && PQntuples(r->get()) == 0) {
        return ForwardedAnswer{503,
                               R"({"error": "the request was dropped unanswered; try again"})"};
      }
      if (r.ok() && PQgetvalue(r->get(), 0, 0)[0] == 't') {
        ForwardedAnswer a{std::atoi(PQgetvalue(r->get(), 0, 1)), PQgetvalue(r->get(), 0, 2)};
        (void)conn->Exec("DELETE FROM signer_requests WHERE id = $1", {id});
        return a;
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

void SharedRepository::AnswerRequests() {
  for (;;) {
    std::string id, body, peer;
    {
      std::lock_guard<std::mutex> lock(mu_);
      // A request whose sender is gone (a minute old) is not acted on.
      (void)db_->connection()->Exec(
          "DELETE FROM signer_requests WHERE created < now() - interval '1 minute'");
      auto r = db_->connection()->Exec(
          "UPDATE signer_requests SET taken = true WHERE id = (SELECT id FROM signer_requests "
          "WHERE NOT taken ORDER BY id LIMIT 1) AND NOT taken RETURNING id, body, peer");
      if (!r.ok() || PQntuples(r->get()) == 0) return;
      id = PQgetvalue(r->get(), 0, 0);
      body = PQgetvalue(r->get(), 0, 1);
      peer = PQgetvalue(r->get(), 0, 2);
    }
    ForwardedAnswer a = callbacks_.on_forwarded
                            ? callbacks_.on_forwarded(body, peer)
                            : ForwardedAnswer{503, R"({"error": "no signer here"})"};
    std::lock_guard<std::mutex> lock(mu_);
    auto done = db_->connection()->Exec(
        "UPDATE signer_requests SET done = true, status = $2, answer = $3 WHERE id = $1",
        {id, std::to_string(a.status), a.body});
    if (!done.ok()) return;
  }
}

}  // namespace qp::server
