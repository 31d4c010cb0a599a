#include "contract/rollout.h"

#include <algorithm>

#include "core/hash.h"

namespace qp::contract {

using Json = nlohmann::json;

Result<Rollout> Rollout::Parse(std::span<const std::uint8_t> bytes) {
  Json j = Json::parse(bytes.begin(), bytes.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("improvements") ||
      !j["improvements"].is_object()) {
    return Error(ErrorCode::kCorrupt, "rollout.json: expected {\"improvements\": {...}}");
  }
  Rollout out;
  for (auto it = j["improvements"].begin(); it != j["improvements"].end(); ++it) {
    const Json& v = it.value();
    if (!v.is_object()) return Error(ErrorCode::kCorrupt, "rollout.json: " + it.key());
    RolloutEntry e;
    if (v.contains("percent") && v["percent"].is_number_integer()) {
      e.percent =
          static_cast<int>(std::clamp<std::int64_t>(v["percent"].get<std::int64_t>(), 0, 100));
    }
    if (v.contains("halted") && v["halted"].is_boolean()) e.halted = v["halted"].get<bool>();
    if (v.contains("reason") && v["reason"].is_string()) e.reason = v["reason"].get<std::string>();
    out.improvements[it.key()] = std::move(e);
  }
  return out;
}

const RolloutEntry* Rollout::Find(const std::string& id) const {
  auto it = improvements.find(id);
  return it == improvements.end() ? nullptr : &it->second;
}

Json Rollout::ToJson() const {
  Json list = Json::object();
  for (const auto& [id, e] : improvements) {
    list[id] = Json{{"percent", e.percent}, {"halted", e.halted}, {"reason", e.reason}};
  }
  return Json{{"improvements", list}};
}

std::string Rollout::Serialize() const { return ToJson().dump(2) + "\n"; }

int Cohort(const std::string& install_id, const std::string& improvement_id) {
  Sha256Digest d = Sha256Of(install_id + "/" + improvement_id);
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < 8; ++i) v = (v << 8) | d[i];
  return static_cast<int>(v % 10000);
}

bool InRollout(const std::string& install_id, const std::string& improvement_id, int percent) {
  return Cohort(install_id, improvement_id) < percent * 100;
}

}  // namespace qp::contract
