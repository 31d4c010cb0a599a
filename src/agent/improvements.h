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

#include "core/clock.h"
#include "core/result.h"
#include "tuf/updater.h"

namespace qp::agent {

struct Improvement {
  std::string target_path;
  tuf::TargetFile file;
  std::string component, platform, base, label;
  std::string from;  // "base" or the label it patches from
  std::string result_digest;
  std::vector<std::string> cves;
  std::string urgency = "normal";  // critical, high, normal
  bool exploited = false;
  std::vector<std::string> restart;
  bool revoked = false;

  // "<component>/<base>/<label>", the key of rollout.json.
  std::string Id() const { return component + "/" + base + "/" + label; }
};

// Reads custom.quietpatch of a target. kCorrupt naming the target when it is malformed.
Result<Improvement> ParseImprovement(const tuf::TargetInfo& target);

struct RolloutEntry {
  int percent = 0;
  bool halted = false;
  std::string reason;
};

// Parses rollout.json ({"improvements": {"<id>": {"percent", "halted", "reason"}}}).
Result<std::map<std::string, RolloutEntry>> ParseRollout(std::span<const std::uint8_t> bytes);

// The device's cohort for an improvement: the first 8 bytes of
// SHA-256(install_id + "/" + improvement_id) as a big-endian integer, mod 10000.
int Cohort(const std::string& install_id, const std::string& improvement_id);
bool InRollout(const std::string& install_id, const std::string& improvement_id, int percent);

// Labels order by length, then alphabetically: a < b < ... < z < aa.
bool LabelLess(const std::string& a, const std::string& b);

struct DecisionInput {
  std::string component, platform, base;
  std::string current_label;  // "" = base
  const std::vector<Improvement>* improvements = nullptr;
  const std::map<std::string, RolloutEntry>* rollout = nullptr;
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
    kNothing,        // up to date, or nothing offered to this device yet
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
