// What the agent remembers between checks and restarts (agent.json in the state
// directory): when it first saw each improvement (for deferrals), which improvements the
// person removed (not installed again automatically), what the installed improvement of
// each component fixes, and when the last check worked.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/env.h"
#include "core/result.h"

namespace qp::agent {

inline constexpr const char* kAgentStateFile = "agent.json";
inline constexpr std::uint64_t kMaxAgentStateBytes = 16 << 20;

struct InstalledFix {
  std::vector<std::string> cves;
  std::string urgency;
};

struct AgentState {
  std::map<std::string, WallTime> first_seen;     // improvement id -> first seen
  std::map<std::string, InstalledFix> installed;  // component -> what its fix fixes
  std::map<std::string, std::string> declined;    // component -> label removed here
  std::optional<WallTime> last_check;
  // How the fleet service knows this device: "" (not enrolled), "pending", "accepted".
  std::string enrollment;
};

// An empty state when the file does not exist (first start); kCorrupt naming the file when
// it cannot be read.
Result<AgentState> LoadAgentState(Env* env, const std::string& path);
Status SaveAgentState(Env* env, const std::string& path, const AgentState& state);

}  // namespace qp::agent
