// The reports and nonce claims of one group commit, written to PostgreSQL in one statement
// (postgres_report_store.cc queues them; group_commit.h batches them).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/result.h"
#include "online/pg_connection.h"
#include "server/report_store.h"

namespace qp::server {

// A report or a nonce claim waiting for the next group commit, with its outcome.
struct PendingReport {
  const std::vector<StoredEvent>* events = nullptr;  // a report, and/or
  const std::string* nonce = nullptr;  // a nonce claim (a report's is stored only if fresh)
  std::int64_t time = 0;               // received, or claimed at
  std::int64_t forget_before = 0;      // nonces older than this may go
  Status status;
  int stored = 0;      // a report: events new to the database
  bool fresh = false;  // a claim: the nonce was not claimed before

  // A report received at `received` (unix seconds), with its request's nonce claim if any;
  // `events` and `claim` must outlive the write.
  static PendingReport Of(const std::vector<StoredEvent>& events, std::int64_t received,
                          const NonceClaim* claim) {
    PendingReport p;
    p.events = &events;
    p.time = received;
    if (claim != nullptr) p.nonce = &claim->key, p.forget_before = claim->forget_before;
    return p;
  }

  // A report's outcome: its new events, or why none were stored.
  Result<int> Stored() const {
    if (!status.ok()) return status.error();
    if (nonce != nullptr && !fresh) return Error(ErrorCode::kAlreadyExists, "replayed request");
    return stored;
  }
};

// Writes batches on one connection, which its caller holds (locked) while it writes.
class ReportBatchWriter {
 public:
  explicit ReportBatchWriter(online::PgConnection* conn) : conn_(conn) {}

  // One transaction; when it fails, each request alone (a request the database refuses
  // fails alone). Sets each item's outcome.
  void Write(const std::vector<PendingReport*>& batch);

 private:
  Status WriteTransaction(const std::vector<PendingReport*>& batch);
  void PruneHistories(std::vector<std::string> over);

  online::PgConnection* conn_;
  std::uint64_t claims_ = 0;  // nonces claimed through this writer
};

}  // namespace qp::server
