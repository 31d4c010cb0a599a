// Check-and-decide: what the repository offers (read from metadata TUF has verified), and
// what this device does about it for one component: the pure Decide() of improvements.h,
// then this device's memory (an improvement the person removed is not installed again by
// itself) and the person's request.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "agent/agent_state.h"
#include "agent/improvements.h"
#include "contract/rollout.h"
#include "tuf/updater.h"

namespace qp::agent {

struct Offer {
  std::vector<Improvement> improvements;
  contract::Rollout rollout;  // empty when the repository has no rollout.json
  // rollout.json's signed length and hashes (from the rollout role's targets), when read.
  std::uint64_t rollout_length = 0;
  std::map<std::string, std::string> rollout_hashes;
};

// Reads the improvements role's targets and rollout.json from a refreshed updater. A target
// whose custom metadata is malformed is skipped (and logged); rollout.json that does not
// verify or parse fails the check, as does one longer than `max_rollout_bytes`. When the
// signed metadata gives rollout.json the length and hashes it had in `previous` (the last
// verified offer), its rollout is kept and the file is not downloaded again.
Result<Offer> ReadOffer(tuf::Updater& updater, std::uint64_t max_rollout_bytes,
                        const Offer* previous = nullptr);

// What a person asked for in this check: nothing (""), everything offered ("*", an offline
// bundle), a component name, or one improvement id.
class Request {
 public:
  explicit Request(std::string what = "") : what_(std::move(what)) {}
  bool empty() const { return what_.empty(); }
  // Whether the request is about `component` (manual: rollout, setting and deferral aside).
  bool Names(const std::string& component) const;
  // Whether `imp`, the newest improvement for its component, is what was asked for.
  bool Wants(const Improvement& imp) const;
  const std::string& what() const { return what_; }

 private:
  std::string what_;
};

// Decide() for one component, with `in.manual` set from the request, then: an improvement
// removed or rolled back here stays available rather than reinstalled (unless asked for);
// a request for an improvement other than the one decided installs nothing.
Decision DecideFor(DecisionInput in, const Request& request, const AgentState& state);

}  // namespace qp::agent
