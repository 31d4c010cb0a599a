// The operator's device management (FleetService::AdminDevices): enrollment credentials
// and devices. Admin token only; every action is audited, tokens never are.
#include <spdlog/spdlog.h>

#include "server/fleet_service.h"

namespace qp::server {

using Json = nlohmann::json;

namespace {

Json EnrollmentJson(const Enrollment& e) {
  return Json{{"id", e.id},           {"uses", e.max_uses},   {"used", e.used},
              {"created", e.created}, {"expires", e.expires}, {"require_accept", e.require_accept},
              {"revoked", e.revoked}, {"note", e.note}};
}

Json DeviceJson(const Device& d) {
  return Json{{"id", d.install_id},
              {"enrollment", d.enrollment_id},
              {"status", d.status},
              {"enrolled", d.enrolled}};
}

int StatusOf(const Error& e) {
  switch (e.code()) {
    case ErrorCode::kNotFound:
      return 404;
    case ErrorCode::kInvalidArgument:
      return 400;
    default:
      return 500;
  }
}

}  // namespace

ApiResponse FleetService::AdminDevices(std::string_view path, bool post,
                                       std::string_view authorization, std::string_view body,
                                       const std::string& peer) {
  const std::string action(path.substr(std::string_view("/v1/admin/").size()));
  if (!Authorized(authorization)) {
    if (post) audit_.Refused(action, peer, "invalid token");
    return ErrorResponse(401, "invalid or missing bearer token");
  }
  if (!post) {
    if (path == "/v1/admin/enrollments") {
      auto list = store_->ListEnrollments();
      if (!list.ok()) return ErrorResponse(500, list.error().ToString());
      Json out = Json::array();
      for (const auto& e : *list) out.push_back(EnrollmentJson(e));
      return JsonResponse(200, out);
    }
    if (path == "/v1/admin/devices") {
      auto list = store_->ListDevices();
      if (!list.ok()) return ErrorResponse(500, list.error().ToString());
      Json out = Json::array();
      for (const auto& d : *list) out.push_back(DeviceJson(d));
      return JsonResponse(200, out);
    }
    return ErrorResponse(405, "method not allowed");
  }
  Json j = Json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return ErrorResponse(400, "expected a JSON object");
  if (path == "/v1/admin/enrollments") {
    if (!j.value("uses", Json()).is_number_integer() ||
        !j.value("days", Json()).is_number_integer() ||
        !j.value("require_accept", Json(false)).is_boolean() ||
        !j.value("note", Json("")).is_string()) {
      return ErrorResponse(
          400, R"(expected {"uses": N, "days": D, "require_accept"?: bool, "note"?: ""})");
    }
    auto created =
        gate_.CreateEnrollment(j["uses"].get<int>(), std::chrono::hours(24) * j["days"].get<int>(),
                               j.value("require_accept", false), j.value("note", std::string()));
    Json details = j;
    if (!created.ok()) {
      Audit(action, peer, details, created.error().ToString());
      return ErrorResponse(StatusOf(created.error()), created.error().ToString());
    }
    details["id"] = created->enrollment.id;
    Audit(action, peer, details, "ok");
    Json out = EnrollmentJson(created->enrollment);
    out["token"] = created->token;
    return JsonResponse(200, out);
  }
  if (!j.value("id", Json()).is_string()) return ErrorResponse(400, R"(expected {"id": "..."})");
  const std::string id = j["id"].get<std::string>();
  Json result;
  Status s = OkStatus();
  if (path == "/v1/admin/enrollments/revoke") {
    auto n = store_->RevokeEnrollment(id);
    if (n.ok()) {
      result = Json{{"id", id}, {"devices_revoked", *n}};
    } else {
      s = n.error();
    }
    gate_.ForgetAll();
  } else if (path == "/v1/admin/devices/accept" || path == "/v1/admin/devices/revoke") {
    const bool accept = path == "/v1/admin/devices/accept";
    auto device = store_->FindDevice(id);
    if (!device.ok()) {
      s = device.error();
    } else if (!device->has_value()) {
      s = Error(ErrorCode::kNotFound, "no device " + id);
    } else if (accept && (*device)->status == kDeviceRevoked) {
      // A revoked device stays revoked: it enrolls anew, with a new key, if it is trusted.
      s = Error(ErrorCode::kInvalidArgument, "device " + id + " is revoked");
    } else {
      s = store_->SetDeviceStatus(id, accept ? kDeviceAccepted : kDeviceRevoked);
    }
    gate_.Forget(id);
    if (s.ok()) result = Json{{"id", id}, {"status", accept ? kDeviceAccepted : kDeviceRevoked}};
  } else {
    return ErrorResponse(404, "not found");
  }
  Audit(action, peer, j, s.ok() ? "ok" : s.error().ToString());
  if (!s.ok()) return ErrorResponse(StatusOf(s.error()), s.error().ToString());
  return JsonResponse(200, result);
}

}  // namespace qp::server
