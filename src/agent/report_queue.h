// Reports of every state change, queued durably in the state directory and delivered to
// the server (POST /v1/reports) with retries: a server outage loses nothing, and the
// server's idempotence on (install id, seq) makes redelivery harmless.
// Thread-compatible: the agent serialises access.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/transport.h"
#include "core/clock.h"
#include "core/env.h"

namespace qp::agent {

struct ReportEvent {
  std::string component, platform, base, improvement;  // improvement: label or ""
  std::string state;  // available, deferred, downloading, installed, protected, failed,
                      // rolled_back, removed, superseded
  std::string error;
  std::vector<std::pair<int, std::string>> restart_needed;  // pid, process name
};

class ReportQueue {
 public:
  ReportQueue(Env* env, Clock* clock, std::string path, std::size_t max_events = 10000);

  // Loads the queue (a missing file is an empty queue).
  Status Load();
  // Appends an event with the next sequence number and saves the queue durably. When the
  // queue is full the oldest events are dropped (and counted in the next one's error).
  Status Enqueue(const ReportEvent& event);
  // The header lines that sign a request body (the device's signature).
  using Signer = std::function<Result<std::vector<std::string>>(const std::string& body)>;

  // Sends the queue in batches of up to 100 events, each signed by `sign`; drops them once
  // the server says they are stored. Returns the number delivered. kIo (with the server's
  // Retry-After in seconds in `retry_after`) when the server is unreachable or refuses;
  // kVerificationFailed when it does not know this device (HTTP 401: enroll again).
  Result<std::size_t> Flush(ReportSender& sender, const Signer& sign, const std::string& url,
                            const std::string& install_id, const std::string& agent_version,
                            long* retry_after);

  std::size_t pending() const { return events_.size(); }

 private:
  Status Save();

  Env* env_;
  Clock* clock_;
  std::string path_;
  std::size_t max_events_;
  std::uint64_t next_seq_ = 1;
  std::uint64_t dropped_ = 0;
  std::vector<nlohmann::json> events_;
};

}  // namespace qp::agent
