#include "agent/improvements.h"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "core/hash.h"

namespace qp::agent {

using Json = nlohmann::json;

Result<Improvement> ParseImprovement(const tuf::TargetInfo& target) {
  Improvement imp;
  imp.target_path = target.path;
  imp.file = target.file;
  const Json& custom = target.file.custom;
  auto bad = [&](const std::string& what) {
    return Error(ErrorCode::kCorrupt, "improvement " + target.path + ": " + what);
  };
  if (!custom.is_object() || !custom.contains("quietpatch") || !custom["quietpatch"].is_object()) {
    return bad("no custom.quietpatch object");
  }
  const Json& q = custom["quietpatch"];
  try {
    imp.component = q.at("component").get<std::string>();
    imp.platform = q.at("platform").get<std::string>();
    imp.base = q.at("base").get<std::string>();
    imp.label = q.at("label").get<std::string>();
    imp.from = q.at("from").get<std::string>();
    imp.result_digest = q.at("result_digest").get<std::string>();
    if (q.contains("cves")) imp.cves = q["cves"].get<std::vector<std::string>>();
    if (q.contains("urgency")) imp.urgency = q["urgency"].get<std::string>();
    if (q.contains("exploited")) imp.exploited = q["exploited"].get<bool>();
    if (q.contains("restart")) imp.restart = q["restart"].get<std::vector<std::string>>();
    if (q.contains("revoked")) imp.revoked = q["revoked"].get<bool>();
  } catch (const Json::exception& e) {
    return bad(e.what());
  }
  if (imp.label.empty() || imp.label.find_first_not_of("abcdefghijklmnopqrstuvwxyz") != std::string::npos) {
    return bad("label \"" + imp.label + "\" is not lowercase letters");
  }
  if (imp.result_digest.size() != 64) return bad("result_digest is not a SHA-256");
  return imp;
}

Result<std::map<std::string, RolloutEntry>> ParseRollout(std::span<const std::uint8_t> bytes) {
  Json j = Json::parse(bytes.begin(), bytes.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("improvements") ||
      !j["improvements"].is_object()) {
    return Error(ErrorCode::kCorrupt, "rollout.json: expected {\"improvements\": {...}}");
  }
  std::map<std::string, RolloutEntry> out;
  for (auto it = j["improvements"].begin(); it != j["improvements"].end(); ++it) {
    RolloutEntry e;
    const Json& v = it.value();
    if (!v.is_object()) return Error(ErrorCode::kCorrupt, "rollout.json: " + it.key());
    if (v.contains("percent") && v["percent"].is_number_integer()) {
      e.percent = std::clamp(v["percent"].get<int>(), 0, 100);
    }
    if (v.contains("halted") && v["halted"].is_boolean()) e.halted = v["halted"].get<bool>();
    if (v.contains("reason") && v["reason"].is_string()) e.reason = v["reason"].get<std::string>();
    out[it.key()] = e;
  }
  return out;
}

int Cohort(const std::string& install_id, const std::string& improvement_id) {
  Sha256Digest d = Sha256Of(install_id + "/" + improvement_id);
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | d[static_cast<std::size_t>(i)];
  return static_cast<int>(v % 10000);
}

bool InRollout(const std::string& install_id, const std::string& improvement_id, int percent) {
  return Cohort(install_id, improvement_id) < percent * 100;
}

bool LabelLess(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return a.size() < b.size();
  return a < b;
}

Decision Decide(const DecisionInput& in) {
  Decision d;
  const auto& all = *in.improvements;
  // A revoked installed improvement is rolled back first.
  if (!in.current_label.empty()) {
    for (const auto& imp : all) {
      if (imp.component == in.component && imp.platform == in.platform && imp.base == in.base &&
          imp.label == in.current_label && imp.revoked) {
        d.kind = Decision::Kind::kRemoveRevoked;
        d.improvement = &imp;
        d.reason = "improvement (" + imp.label + ") was revoked";
        return d;
      }
    }
  }
  const std::string from = in.current_label.empty() ? "base" : in.current_label;
  std::vector<const Improvement*> candidates;
  for (const auto& imp : all) {
    if (imp.component != in.component || imp.platform != in.platform || imp.base != in.base) continue;
    if (imp.revoked || imp.from != from) continue;
    if (!in.current_label.empty() && !LabelLess(in.current_label, imp.label)) continue;
    candidates.push_back(&imp);
  }
  // Newest first: an improvement whose rollout is halted or has not reached this device
  // yet does not hold back an older one that has (improvements are cumulative).
  std::sort(candidates.begin(), candidates.end(),
            [](const Improvement* a, const Improvement* b) { return LabelLess(b->label, a->label); });
  Decision halted;
  for (const Improvement* best : candidates) {
    RolloutEntry rollout;
    if (in.rollout != nullptr) {
      auto it = in.rollout->find(best->Id());
      if (it != in.rollout->end()) rollout = it->second;
    }
    if (rollout.halted) {
      if (halted.improvement == nullptr) {
        halted.kind = Decision::Kind::kHalted;
        halted.improvement = best;
        halted.reason = rollout.reason.empty() ? "rollout halted" : "rollout halted: " + rollout.reason;
      }
      continue;
    }
    d.improvement = best;
    if (in.manual) {
      d.kind = Decision::Kind::kInstall;
      return d;
    }
    if (!InRollout(in.install_id, best->Id(), rollout.percent)) {
      d.improvement = nullptr;
      continue;  // not offered to this device yet
    }
    if (!in.auto_install) {
      d.kind = Decision::Kind::kAvailable;
      return d;
    }
    if (in.defer.count() > 0 && !best->exploited) {
      WallTime seen = in.now;
      if (in.first_seen != nullptr) {
        auto it = in.first_seen->find(best->Id());
        if (it != in.first_seen->end()) seen = it->second;
      }
      if (in.now < seen + in.defer) {
        d.kind = Decision::Kind::kDeferred;
        d.until = seen + in.defer;
        return d;
      }
    }
    d.kind = Decision::Kind::kInstall;
    return d;
  }
  return halted.improvement != nullptr ? halted : d;
}

}  // namespace qp::agent
