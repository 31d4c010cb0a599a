#include "agent/improvements.h"

#include <nlohmann/json.hpp>

#include <algorithm>

namespace qp::agent {

Result<Improvement> ParseImprovement(const tuf::TargetInfo& target) {
  QP_ASSIGN_OR_RETURN(contract::ImprovementTarget parsed,
                      contract::ImprovementTarget::FromCustom(target.file.custom, target.path));
  Improvement imp;
  static_cast<contract::ImprovementTarget&>(imp) = std::move(parsed);
  imp.target_path = target.path;
  imp.file = target.file;
  return imp;
}

Decision Decide(const DecisionInput& in) {
  Decision d;
  const auto& all = *in.improvements;
  // A revoked installed improvement is rolled back first.
  if (!in.current_label.empty()) {
    for (const auto& imp : all) {
      if (imp.id.component == in.component && imp.platform == in.platform &&
          imp.id.base == in.base && imp.id.label == in.current_label && imp.revoked) {
        d.kind = Decision::Kind::kRemoveRevoked;
        d.improvement = &imp;
        d.reason = "improvement (" + imp.id.label + ") was revoked";
        return d;
      }
    }
  }
  const std::string from =
      in.current_label.empty() ? std::string(contract::kFromBase) : in.current_label;
  std::vector<const Improvement*> candidates;
  for (const auto& imp : all) {
    if (imp.id.component != in.component || imp.platform != in.platform || imp.id.base != in.base)
      continue;
    if (imp.revoked || imp.from != from) continue;
    if (!in.current_label.empty() && !contract::LabelLess(in.current_label, imp.id.label)) continue;
    candidates.push_back(&imp);
  }
  // Newest first: an improvement whose rollout is halted or has not reached this device
  // yet does not hold back an older one that has (improvements are cumulative).
  std::sort(candidates.begin(), candidates.end(), [](const Improvement* a, const Improvement* b) {
    return contract::LabelLess(b->id.label, a->id.label);
  });
  Decision halted;
  for (const Improvement* best : candidates) {
    contract::RolloutEntry rollout;
    if (in.rollout != nullptr) {
      if (const contract::RolloutEntry* e = in.rollout->Find(best->Id())) rollout = *e;
    }
    if (rollout.halted) {
      if (halted.improvement == nullptr) {
        halted.kind = Decision::Kind::kHalted;
        halted.improvement = best;
        halted.reason =
            rollout.reason.empty() ? "rollout halted" : "rollout halted: " + rollout.reason;
      }
      continue;
    }
    d.improvement = best;
    if (in.manual) {
      d.kind = Decision::Kind::kInstall;
      return d;
    }
    if (!contract::InRollout(in.install_id, best->Id(), rollout.percent)) {
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
