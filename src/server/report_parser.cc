#include "server/report_parser.h"

#include <nlohmann/json.hpp>

#include "contract/report_state.h"

namespace qp::server {
namespace {

using Json = nlohmann::json;

Error Bad(const std::string& field, const std::string& problem) {
  return Error(ErrorCode::kInvalidArgument, "report: " + field + ": " + problem);
}

Result<std::string> Str(const Json& obj, const char* key, const std::string& where, std::size_t max,
                        bool allow_empty) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) return Bad(where + key, "expected a string");
  const auto& s = it->get_ref<const std::string&>();
  if (s.size() > max) return Bad(where + key, "longer than " + std::to_string(max));
  if (!allow_empty && s.empty()) return Bad(where + key, "empty");
  // No database keeps a NUL inside text (PostgreSQL refuses it): refused here, not there.
  if (s.find('\0') != std::string::npos) return Bad(where + key, "contains a NUL character");
  return s;
}

}  // namespace

Result<ParsedReport> ParseReport(std::string_view body) {
  if (body.size() > kMaxReportBytes) {
    return Error(ErrorCode::kTooLarge,
                 "report larger than " + std::to_string(kMaxReportBytes) + " bytes");
  }
  Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return Bad("body", "not a JSON object");
  ParsedReport r;
  QP_ASSIGN_OR_RETURN(r.install_id, Str(j, "install_id", "", 64, false));
  if (r.install_id.size() < 16 ||
      r.install_id.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return Bad("install_id", "expected 16 to 64 lowercase hex characters");
  }
  QP_ASSIGN_OR_RETURN(r.agent_version, Str(j, "agent_version", "", 64, false));
  auto events = j.find("events");
  if (events == j.end() || !events->is_array()) return Bad("events", "expected an array");
  if (events->size() > 500) return Bad("events", "more than 500");
  for (std::size_t i = 0; i < events->size(); ++i) {
    const Json& e = (*events)[i];
    std::string w = "events[" + std::to_string(i) + "].";
    if (!e.is_object()) return Bad(w, "expected an object");
    StoredEvent ev;
    ev.install_id = r.install_id;
    ev.agent_version = r.agent_version;
    auto seq = e.find("seq");
    if (seq == e.end() || !seq->is_number_integer() || seq->get<std::int64_t>() < 1) {
      return Bad(w + "seq", "expected an integer >= 1");
    }
    ev.seq = seq->get<std::int64_t>();
    auto time = e.find("time");
    if (time == e.end() || !time->is_number_integer())
      return Bad(w + "time", "expected an integer");
    ev.time = time->get<std::int64_t>();
    QP_ASSIGN_OR_RETURN(ev.component, Str(e, "component", w, 64, false));
    QP_ASSIGN_OR_RETURN(ev.platform, Str(e, "platform", w, 64, true));
    QP_ASSIGN_OR_RETURN(ev.base, Str(e, "base", w, 128, true));
    QP_ASSIGN_OR_RETURN(ev.improvement, Str(e, "improvement", w, 16, true));
    if (ev.improvement.find_first_not_of("abcdefghijklmnopqrstuvwxyz") != std::string::npos) {
      return Bad(w + "improvement", "expected a label of lowercase letters");
    }
    QP_ASSIGN_OR_RETURN(ev.state, Str(e, "state", w, 32, false));
    if (!contract::ParseReportState(ev.state))
      return Bad(w + "state", "unknown state \"" + ev.state + "\"");
    QP_ASSIGN_OR_RETURN(ev.error, Str(e, "error", w, 2000, true));
    auto restart = e.find("restart_needed");
    if (restart == e.end() || !restart->is_array() || restart->size() > 100) {
      return Bad(w + "restart_needed", "expected an array of at most 100");
    }
    Json clean = Json::array();
    for (const auto& p : *restart) {
      if (!p.is_object() || !p.contains("pid") || !p["pid"].is_number_integer() ||
          !p.contains("name") || !p["name"].is_string() ||
          p["name"].get_ref<const std::string&>().size() > 64) {
        return Bad(w + "restart_needed", "expected {\"pid\": integer, \"name\": string}");
      }
      clean.push_back(Json{{"pid", p["pid"]}, {"name", p["name"]}});
    }
    ev.restart_needed = clean.dump();
    r.events.push_back(std::move(ev));
  }
  return r;
}

}  // namespace qp::server
