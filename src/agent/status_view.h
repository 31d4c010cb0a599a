// The person's view of the agent (quietpatch status / history): for each component its
// patch level, what its installed fix protects against and whether that protection is in
// effect (no process still runs the old code), what is offered and why it waits, and the
// last error. Built from the store's cached state (no rehashing) and the agent's memory.
#pragma once

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "agent/agent_state.h"
#include "agent/improvements.h"
#include "store/package_component.h"
#include "store/store.h"

namespace qp::agent {

// What the last check found for a component.
struct ComponentView {
  std::string last_error;
  std::optional<Improvement> offered;  // what is available / deferred / halted
  std::string offered_state;           // available, deferred, halted
  WallTime deferred_until;
  std::string last_reported;  // "<state>/<improvement>/<error>", to report changes once
};

struct AgentSummary {
  std::string agent_version;
  // Components configured but not active (a Debian package missing or half-installed).
  std::vector<store::InactiveComponent> inactive;
  bool auto_install = true;
  bool auto_install_locked = false;
  std::chrono::hours defer{0};
  std::optional<WallTime> last_check;
  std::string last_check_error;
  std::size_t pending_reports = 0;
  std::string install_id;
  std::string enrollment;  // not enrolled, pending, accepted
  std::string enrollment_error;
};

nlohmann::json StatusJson(store::Store& store,
                          const std::vector<store::ComponentConfig>& components,
                          const std::map<std::string, ComponentView>& views,
                          const std::vector<Improvement>& improvements, const AgentState& state,
                          const AgentSummary& summary);

// Every component's install/remove history, oldest first.
nlohmann::json HistoryJson(store::Store& store,
                           const std::vector<store::ComponentConfig>& components);

}  // namespace qp::agent
