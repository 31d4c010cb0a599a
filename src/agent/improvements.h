// What the signed metadata says about improvements, and the pure decision of what a device
// does with them: the newest improvement for the component's platform and base version
// whose patch starts from its current state; inside the rollout (a stable per-install
// cohort); not while the rollout is halted; only reported when "Automatically Install" is
// off; held by a managed deferral unless exploited in the wild; rolled back when revoked.
// Pure: no I/O, no clock (times are passed in). The contract is docs/repository.md.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "contract/improvement_target.h"
#include "contract/rollout.h"
#include "core/clock.h"
#include "core/result.h"
#include "tuf/updater.h"

namespace qp::agent {

// One patch of an improvement, as the signed targets metadata lists it.
struct Improvement : contract::ImprovementTarget {
  std::string target_path;
  tuf::TargetFile file;

  // "<component>/<base>/<label>", the key of rollout.json.
  std::string Id() const { return id.ToString(); }
};

// Reads custom.quietpatch of a target (contract::ImprovementTarget). kCorrupt naming the
// target when it is malformed.
Result<Improvement> ParseImprovement(const tuf::TargetInfo& target);

struct DecisionInput {
  std::string component, platform, base;
  std::string current_label;  // "" = base
  const std::vector<Improvement>* improvements = nullptr;
  const contract::Rollout* rollout = nullptr;
  std::string install_id;
  bool auto_install = true;
  std::chrono::hours defer{0};
  // When this device first saw each improvement (by id), for the deferral.
  const std::map<std::string, WallTime>* first_seen = nullptr;
  WallTime now;
  bool manual = false;  // the person asked: rollout percentage, setting and deferral aside
};

struct Decision {
  enum class Kind {
    kNothing,  // up to date, or nothing offered to this device yet
    kInstall,
    kAvailable,      // automatic installation is off
    kDeferred,       // held by the managed deferral until `until`
    kHalted,         // the rollout is halted
    kRemoveRevoked,  // the installed improvement was revoked: roll it back
  };
  Kind kind = Kind::kNothing;
  const Improvement* improvement = nullptr;
  WallTime until;
  std::string reason;
};

Decision Decide(const DecisionInput& in);

}  // namespace qp::agent
