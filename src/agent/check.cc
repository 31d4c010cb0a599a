#include "agent/check.h"

#include <spdlog/spdlog.h>

namespace qp::agent {

Result<Offer> ReadOffer(tuf::Updater& updater, std::uint64_t max_rollout_bytes,
                        const Offer* previous) {
  Offer offer;
  QP_ASSIGN_OR_RETURN(auto targets, updater.ListRoleTargets("improvements"));
  for (const auto& t : targets) {
    auto imp = ParseImprovement(t);
    if (imp.ok()) {
      offer.improvements.push_back(std::move(imp).value());
    } else {
      spdlog::warn("agent: {}", imp.error().ToString());
    }
  }
  QP_ASSIGN_OR_RETURN(auto rollout_info, updater.GetTargetInfo("rollout.json"));
  if (rollout_info.has_value()) {
    offer.rollout_length = rollout_info->file.length;
    offer.rollout_hashes = rollout_info->file.hashes;
    if (previous != nullptr && !previous->rollout_hashes.empty() &&
        previous->rollout_length == offer.rollout_length &&
        previous->rollout_hashes == offer.rollout_hashes) {
      offer.rollout = previous->rollout;  // the same signed bytes, verified before
      return offer;
    }
    QP_RETURN_IF_ERROR(
        tuf::Updater::DownloadCap("rollout.json", rollout_info->file.length, max_rollout_bytes));
    QP_ASSIGN_OR_RETURN(auto bytes, updater.FetchTarget(*rollout_info));
    QP_ASSIGN_OR_RETURN(offer.rollout, contract::Rollout::Parse(bytes));
  }
  return offer;
}

bool Request::Names(const std::string& component) const {
  if (what_ == "*" || what_ == component) return true;
  auto id = contract::ImprovementId::Parse(what_);
  return id.ok() && id->component == component;
}

bool Request::Wants(const Improvement& imp) const {
  return what_ == "*" || what_ == imp.id.component || what_ == imp.Id();
}

Decision DecideFor(DecisionInput in, const Request& request, const AgentState& state) {
  in.manual = request.Names(in.component);
  Decision d = Decide(in);
  if (d.kind != Decision::Kind::kInstall) return d;
  if (!in.manual) {
    auto declined = state.declined.find(in.component);
    if (declined != state.declined.end() && declined->second == d.improvement->id.label) {
      d.kind = Decision::Kind::kAvailable;
      d.reason = "removed or rolled back here; install it again with quietpatch install";
    }
  } else if (!request.Wants(*d.improvement)) {
    d.kind = Decision::Kind::kNothing;  // asked for another improvement than the newest
  }
  return d;
}

}  // namespace qp::agent
