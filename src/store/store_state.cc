#include "store/store_state.h"

#include <nlohmann/json.hpp>

#include "core/durable_file.h"

namespace qp::store {
namespace {

using Json = nlohmann::json;
constexpr std::uint64_t kMaxStateBytes = 4 * 1024 * 1024;

Json TreeJson(const TreeState& t) { return Json{{"label", t.label}, {"digest", t.digest}}; }

TreeState TreeFrom(const Json& j) {
  return TreeState{j.at("label").get<std::string>(), j.at("digest").get<std::string>()};
}

Result<Json> ReadJson(Env* env, const std::string& path) {
  QP_ASSIGN_OR_RETURN(auto bytes, ReadFileLimited(env, path, kMaxStateBytes));
  Json j = Json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Error(ErrorCode::kCorrupt, path + ": not valid JSON");
  return j;
}

std::int64_t ToSeconds(WallTime t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

}  // namespace

std::string_view JournalOpName(JournalOp op) {
  return op == JournalOp::kInstall ? "install" : "remove";
}

std::optional<JournalOp> ParseJournalOp(std::string_view name) {
  for (JournalOp op : {JournalOp::kInstall, JournalOp::kRemove}) {
    if (JournalOpName(op) == name) return op;
  }
  return std::nullopt;
}

std::string_view JournalPhaseName(JournalPhase phase) {
  switch (phase) {
    case JournalPhase::kStaging:
      return "staging";
    case JournalPhase::kStaged:
      return "staged";
    case JournalPhase::kActivated:
      return "activated";
    case JournalPhase::kRollingBack:
      return "rolling_back";
    case JournalPhase::kCommitting:
      return "committing";
    case JournalPhase::kRestoring:
      return "restoring";
  }
  return "unknown";
}

std::optional<JournalPhase> ParseJournalPhase(std::string_view name) {
  for (JournalPhase p :
       {JournalPhase::kStaging, JournalPhase::kStaged, JournalPhase::kActivated,
        JournalPhase::kRollingBack, JournalPhase::kCommitting, JournalPhase::kRestoring}) {
    if (JournalPhaseName(p) == name) return p;
  }
  return std::nullopt;
}

Result<ComponentState> LoadState(Env* env, const std::string& path) {
  QP_ASSIGN_OR_RETURN(Json j, ReadJson(env, path));
  try {
    ComponentState s;
    s.base_version = j.at("base_version").get<std::string>();
    s.current = TreeFrom(j.at("current"));
    if (!j.at("previous").is_null()) s.previous = TreeFrom(j.at("previous"));
    if (j.contains("superseded") && !j.at("superseded").is_null()) {  // absent in older files
      const Json& sj = j.at("superseded");
      s.superseded =
          Supersession{sj.at("base").get<std::string>(), sj.at("label").get<std::string>(),
                       sj.at("by").get<std::string>()};
    }
    if (!j.at("journal").is_null()) {
      const Json& jj = j.at("journal");
      Journal journal;
      std::string op = jj.at("op").get<std::string>(), phase = jj.at("phase").get<std::string>();
      auto parsed_op = ParseJournalOp(op);
      auto parsed_phase = ParseJournalPhase(phase);
      if (!parsed_op || !parsed_phase) {
        return Error(ErrorCode::kCorrupt, path + ": unknown journal operation " + op + "/" + phase);
      }
      journal.op = *parsed_op;
      journal.phase = *parsed_phase;
      journal.from = TreeFrom(jj.at("from"));
      journal.to = TreeFrom(jj.at("to"));
      journal.marker_inode = jj.at("marker_inode").get<std::uint64_t>();
      journal.changed = jj.at("changed").get<std::vector<std::string>>();
      journal.reason = jj.at("reason").get<std::string>();
      s.journal = std::move(journal);
    }
    return s;
  } catch (const Json::exception& e) {
    return Error(ErrorCode::kCorrupt, path + ": " + e.what());
  }
}

Status SaveState(Env* env, const std::string& path, const ComponentState& state) {
  Json j{{"base_version", state.base_version},
         {"current", TreeJson(state.current)},
         {"previous", state.previous ? TreeJson(*state.previous) : Json()},
         {"journal", Json()},
         {"superseded", Json()}};
  if (state.superseded) {
    j["superseded"] = Json{{"base", state.superseded->base},
                           {"label", state.superseded->label},
                           {"by", state.superseded->by}};
  }
  if (state.journal) {
    const Journal& jr = *state.journal;
    j["journal"] = Json{{"op", JournalOpName(jr.op)},
                        {"phase", JournalPhaseName(jr.phase)},
                        {"from", TreeJson(jr.from)},
                        {"to", TreeJson(jr.to)},
                        {"marker_inode", jr.marker_inode},
                        {"changed", jr.changed},
                        {"reason", jr.reason}};
  }
  return WriteFileDurably(env, path, j.dump(2) + "\n", 0644);
}

Result<std::vector<HistoryEntry>> LoadHistory(Env* env, const std::string& path) {
  auto j = ReadJson(env, path);
  if (!j.ok()) {
    if (j.error().code() == ErrorCode::kNotFound) return std::vector<HistoryEntry>();
    return j.error();
  }
  std::vector<HistoryEntry> out;
  try {
    for (const auto& e : *j) {
      HistoryEntry h;
      h.time = WallTime(std::chrono::seconds(e.at("time").get<std::int64_t>()));
      h.op = e.at("op").get<std::string>();
      h.from = e.at("from").get<std::string>();
      h.to = e.at("to").get<std::string>();
      h.result = e.at("result").get<std::string>();
      h.reason = e.at("reason").get<std::string>();
      out.push_back(std::move(h));
    }
  } catch (const Json::exception& e) {
    return Error(ErrorCode::kCorrupt, path + ": " + e.what());
  }
  return out;
}

Status AppendHistory(Env* env, const std::string& path, const HistoryEntry& entry,
                     std::size_t limit) {
  auto existing = LoadHistory(env, path);
  // A damaged history must not block installs: it restarts (the damage is logged by callers).
  std::vector<HistoryEntry> entries =
      existing.ok() ? std::move(existing).value() : std::vector<HistoryEntry>();
  entries.push_back(entry);
  if (entries.size() > limit) entries.erase(entries.begin(), entries.end() - limit);
  Json j = Json::array();
  for (const auto& h : entries) {
    j.push_back(Json{{"time", ToSeconds(h.time)},
                     {"op", h.op},
                     {"from", h.from},
                     {"to", h.to},
                     {"result", h.result},
                     {"reason", h.reason}});
  }
  return WriteFileDurably(env, path, j.dump(1) + "\n", 0644);
}

}  // namespace qp::store
