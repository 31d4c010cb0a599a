#include "agent/report_queue.h"

#include "core/durable_file.h"

namespace qp::agent {

using Json = nlohmann::json;

ReportQueue::ReportQueue(Env* env, Clock* clock, std::string path, std::size_t max_events)
    : env_(env), clock_(clock), path_(std::move(path)), max_events_(max_events) {}

Status ReportQueue::Load() {
  auto bytes = ReadFileLimited(env_, path_, 64 * 1024 * 1024);
  if (!bytes.ok()) return bytes.error().code() == ErrorCode::kNotFound ? OkStatus() : bytes.error();
  Json j = Json::parse(bytes->begin(), bytes->end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Error(ErrorCode::kCorrupt, path_ + ": not valid JSON");
  }
  next_seq_ = j.value("next_seq", std::uint64_t{1});
  dropped_ = j.value("dropped", std::uint64_t{0});
  events_.clear();
  if (j.contains("events") && j["events"].is_array()) {
    for (auto& e : j["events"]) events_.push_back(e);
  }
  return OkStatus();
}

Status ReportQueue::Save() {
  Json j{{"next_seq", next_seq_}, {"dropped", dropped_}, {"events", events_}};
  return WriteFileDurably(env_, path_, j.dump() + "\n", 0600);
}

Status ReportQueue::Enqueue(const ReportEvent& event) {
  Json restart = Json::array();
  for (const auto& [pid, name] : event.restart_needed) {
    restart.push_back(Json{{"pid", pid}, {"name", name}});
  }
  std::string error = event.error;
  if (dropped_ > 0) {
    error += (error.empty() ? "" : "; ") + std::to_string(dropped_) +
             " earlier reports were dropped while the server was unreachable";
    dropped_ = 0;
  }
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(clock_->Now().time_since_epoch());
  events_.push_back(Json{{"seq", next_seq_++},
                         {"time", secs.count()},
                         {"component", event.component},
                         {"platform", event.platform},
                         {"base", event.base},
                         {"improvement", event.improvement},
                         {"state", event.state},
                         {"error", error},
                         {"restart_needed", restart}});
  while (events_.size() > max_events_) {
    events_.erase(events_.begin());
    ++dropped_;
  }
  return Save();
}

Result<std::size_t> ReportQueue::Flush(ReportSender& sender, const Signer& sign,
                                       const std::string& url, const std::string& install_id,
                                       const std::string& agent_version, long* retry_after) {
  *retry_after = 0;
  std::size_t total = 0;
  while (!events_.empty()) {
    std::size_t n = std::min<std::size_t>(events_.size(), 100);
    Json batch = Json::array();
    for (std::size_t i = 0; i < n; ++i) batch.push_back(events_[i]);
    Json body{{"install_id", install_id}, {"agent_version", agent_version}, {"events", batch}};
    const std::string text = body.dump();
    QP_ASSIGN_OR_RETURN(auto headers, sign(text));
    QP_ASSIGN_OR_RETURN(auto response, sender.Send(url, text, headers));
    if (response.status == 401) {
      return Error(ErrorCode::kVerificationFailed,
                   url + ": HTTP 401 (" + response.body.substr(0, 200) + ")");
    }
    if (response.status != 200) {
      if (!response.retry_after.empty()) {
        try {
          *retry_after = std::stol(response.retry_after);
        } catch (...) {
        }
      }
      return Error(ErrorCode::kIo, url + ": HTTP " + std::to_string(response.status));
    }
    Json answer = Json::parse(response.body, nullptr, false);
    if (answer.is_discarded() || !answer.contains("stored")) {
      return Error(ErrorCode::kIo, url + ": answer without \"stored\"");
    }
    events_.erase(events_.begin(), events_.begin() + static_cast<long>(n));
    QP_RETURN_IF_ERROR(Save());
    total += n;
  }
  return total;
}

}  // namespace qp::agent
