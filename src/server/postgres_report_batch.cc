#include "server/postgres_report_batch.h"

#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <utility>

#include <spdlog/spdlog.h>

namespace qp::server {
namespace {

using online::IntArray;
using online::TextArray;

// A claim in this many prunes the nonces past the replay window.
constexpr int kPruneEvery = 1000;

}  // namespace

void ReportBatchWriter::Write(const std::vector<PendingReport*>& batch) {
  Status all = WriteTransaction(batch);
  if (all.ok() || batch.size() == 1) {
    for (PendingReport* p : batch) p->status = all;
    return;
  }
  for (PendingReport* p : batch) p->status = WriteTransaction({p});
}

// One batch in one statement (one round trip, its own transaction): the nonces claimed,
// the events inserted, each device's latest state per improvement upserted (its highest
// new seq) and its event count raised, all from the rows that were new. What comes back
// says which nonces were fresh, which events were new, and which devices are past their
// history; their oldest events are pruned after, on their own.
Status ReportBatchWriter::WriteTransaction(const std::vector<PendingReport*>& batch) {
  for (PendingReport* p : batch) p->stored = 0, p->fresh = false;
  // In key order, as every instance writes them: concurrent batches do not deadlock. A
  // nonce twice in the batch is inserted once and fresh for the first claim only; the
  // first request with an (install id, seq) owns it, a copy in a later one is not new.
  std::map<std::string, std::int64_t> claims;
  std::int64_t forget_before = INT64_MAX;
  std::map<std::pair<std::string, std::int64_t>, std::pair<const StoredEvent*, PendingReport*>>
      rows;
  for (PendingReport* p : batch) {
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
        conn_->Exec("DELETE FROM nonces WHERE time < $1", {std::to_string(forget_before)}));
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
    for (const std::string* v : {&e.install_id, &e.component, &e.platform, &e.base, &e.improvement,
                                 &e.state, &e.error, &e.restart_needed, &e.agent_version}) {
      cols[c++].push_back(*v);
    }
    seqs.push_back(e.seq);
    times.push_back(e.time);
    received.push_back(row.second->time);
  }
  QP_ASSIGN_OR_RETURN(
      auto r,
      conn_->ExecPrepared(
          "WITH n AS (INSERT INTO nonces (key, time) SELECT * FROM unnest($1::text[], "
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
  for (PendingReport* p : batch) {
    if (p->nonce != nullptr) p->fresh = fresh.erase(*p->nonce) > 0;
  }
  PruneHistories(over);
  return OkStatus();
}

// A bounded history per device: event_counts counts each device's events (from when the
// table was made: a database from before counts from 0, so its devices are pruned a
// little later); a device past kHistoryPerDevice loses its oldest. The events are stored
// already: a prune that fails is tried again at the device's next report.
void ReportBatchWriter::PruneHistories(std::vector<std::string> over) {
  if (over.empty()) return;
  std::sort(over.begin(), over.end());
  const std::string keep = std::to_string(kHistoryPerDevice);
  auto pruned = conn_->Exec(
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

}  // namespace qp::server
