#include "agent/agent_state.h"

#include <nlohmann/json.hpp>

#include "core/durable_file.h"

namespace qp::agent {

using Json = nlohmann::json;

namespace {

WallTime FromSeconds(std::int64_t s) { return WallTime(std::chrono::seconds(s)); }

}  // namespace

Result<AgentState> LoadAgentState(Env* env, const std::string& path) {
  AgentState state;
  auto bytes = ReadFileLimited(env, path, kMaxAgentStateBytes);
  if (!bytes.ok()) {
    if (bytes.error().code() == ErrorCode::kNotFound) return state;  // first start
    return bytes.error();
  }
  Json j = Json::parse(bytes->begin(), bytes->end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Error(ErrorCode::kCorrupt, path + ": not JSON");
  try {
    if (j.contains("first_seen")) {
      for (const auto& [id, t] : j.at("first_seen").items()) {
        state.first_seen[id] = FromSeconds(t.get<std::int64_t>());
      }
    }
    if (j.contains("installed")) {
      for (const auto& [name, fix] : j.at("installed").items()) {
        state.installed[name] = InstalledFix{fix.value("cves", std::vector<std::string>()),
                                             fix.value("urgency", std::string())};
      }
    }
    if (j.contains("declined")) {
      state.declined = j.at("declined").get<std::map<std::string, std::string>>();
    }
    if (j.contains("last_check"))
      state.last_check = FromSeconds(j.at("last_check").get<std::int64_t>());
  } catch (const Json::exception& e) {
    return Error(ErrorCode::kCorrupt, path + ": " + e.what());
  }
  return state;
}

Status SaveAgentState(Env* env, const std::string& path, const AgentState& state) {
  Json first = Json::object();
  for (const auto& [id, t] : state.first_seen) first[id] = UnixSeconds(t);
  Json installed = Json::object();
  for (const auto& [name, fix] : state.installed) {
    installed[name] = Json{{"cves", fix.cves}, {"urgency", fix.urgency}};
  }
  Json j{{"first_seen", first}, {"installed", installed}, {"declined", state.declined}};
  if (state.last_check) j["last_check"] = UnixSeconds(*state.last_check);
  if (!state.enrollment.empty()) j["enrollment"] = state.enrollment;
  return WriteFileDurably(env, path, j.dump(1) + "\n", 0644);
}

}  // namespace qp::agent
