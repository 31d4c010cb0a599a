// The states a device reports for a component and improvement (POST /v1/reports), in the
// order a device passes through them. The agent sends them, the server validates, counts
// and auto-halts on them, the dashboard shows them.
#pragma once

#include <array>
#include <optional>
#include <string_view>

namespace qp::contract {

enum class ReportState {
  kAvailable,    // offered, but "Automatically Install" is off
  kDeferred,     // held by the managed deferral
  kDownloading,  // the patch is being downloaded
  kInstalled,    // on disk; a running process still maps the old code
  kProtected,    // on disk and no process runs the old code
  kFailed,       // the check, download or install failed (error says why)
  kRolledBack,   // installed, failed its health check, and was rolled back
  kRemoved,      // removed at the person's request
  kSuperseded,   // replaced by a full update of the component
};

inline constexpr std::array<ReportState, 9> kAllReportStates = {
    ReportState::kAvailable,  ReportState::kDeferred,  ReportState::kDownloading,
    ReportState::kInstalled,  ReportState::kProtected, ReportState::kFailed,
    ReportState::kRolledBack, ReportState::kRemoved,   ReportState::kSuperseded};

// "available", "deferred", "downloading", "installed", "protected", "failed",
// "rolled_back", "removed", "superseded".
std::string_view ReportStateName(ReportState state);
// The state of a wire name, or nullopt for anything else.
std::optional<ReportState> ParseReportState(std::string_view name);
// Failed or rolled back: what the auto-halt rule counts against a rollout.
bool IsFailureState(ReportState state);

}  // namespace qp::contract
