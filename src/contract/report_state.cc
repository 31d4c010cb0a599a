#include "contract/report_state.h"

namespace qp::contract {

std::string_view ReportStateName(ReportState state) {
  switch (state) {
    case ReportState::kAvailable:
      return "available";
    case ReportState::kDeferred:
      return "deferred";
    case ReportState::kDownloading:
      return "downloading";
    case ReportState::kInstalled:
      return "installed";
    case ReportState::kProtected:
      return "protected";
    case ReportState::kFailed:
      return "failed";
    case ReportState::kRolledBack:
      return "rolled_back";
    case ReportState::kRemoved:
      return "removed";
    case ReportState::kSuperseded:
      return "superseded";
  }
  return "unknown";
}

std::optional<ReportState> ParseReportState(std::string_view name) {
  for (ReportState s : kAllReportStates) {
    if (ReportStateName(s) == name) return s;
  }
  return std::nullopt;
}

bool IsFailureState(ReportState state) {
  return state == ReportState::kFailed || state == ReportState::kRolledBack;
}

}  // namespace qp::contract
