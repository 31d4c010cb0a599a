#include "server/report_store.h"

namespace qp::server {

Result<Device> DecideEnrollment(const std::optional<Enrollment>& enrollment,
                                const std::optional<Device>& known, const std::string& install_id,
                                const std::string& public_key, std::int64_t now) {
  if (!enrollment) return Error(ErrorCode::kFailedPrecondition, "unknown enrollment token");
  if (known) {
    if (known->status == kDeviceRevoked) {
      return Error(ErrorCode::kFailedPrecondition, "device " + install_id + " is revoked");
    }
    if (known->public_key != public_key || known->enrollment_id != enrollment->id) {
      return Error(ErrorCode::kFailedPrecondition,
                   "device " + install_id + " is enrolled with another key or token");
    }
    return *known;  // enrolling again changes nothing
  }
  if (enrollment->revoked) return Error(ErrorCode::kFailedPrecondition, "enrollment token revoked");
  if (now >= enrollment->expires) {
    return Error(ErrorCode::kFailedPrecondition, "enrollment token expired");
  }
  if (enrollment->used >= enrollment->max_uses) {
    return Error(ErrorCode::kFailedPrecondition,
                 "enrollment token used up (" + std::to_string(enrollment->max_uses) + " devices)");
  }
  return Device{install_id, public_key, enrollment->id,
                enrollment->require_accept ? kDevicePending : kDeviceAccepted, now};
}

Result<std::unique_ptr<ReportStore>> OpenReportStore(const std::string& url) {
  if (url.rfind("sqlite:", 0) == 0) return OpenSqliteReportStore(url.substr(7));
  if (url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0) {
    return OpenPostgresReportStore(url);
  }
  return Error(ErrorCode::kInvalidArgument,
               "database must be sqlite:PATH or postgresql://... (got \"" + url + "\")");
}

}  // namespace qp::server
