#include "contract/improvement_target.h"

namespace qp::contract {

using Json = nlohmann::json;

namespace {

bool IsHexSha256(const std::string& s) {
  return s.size() == 64 && s.find_first_not_of("0123456789abcdef") == std::string::npos;
}

}  // namespace

bool IsValidUrgency(std::string_view urgency) {
  return urgency == "critical" || urgency == "high" || urgency == "normal";
}

Result<ImprovementTarget> ImprovementTarget::FromCustom(const Json& custom,
                                                        const std::string& where) {
  const auto bad = [&](const std::string& what) {
    return Error(ErrorCode::kCorrupt, "improvement " + where + ": " + what);
  };
  if (!custom.is_object() || !custom.contains("quietpatch") || !custom["quietpatch"].is_object()) {
    return bad("no custom.quietpatch object");
  }
  const Json& q = custom["quietpatch"];
  ImprovementTarget t;
  try {
    t.id.component = q.at("component").get<std::string>();
    t.platform = q.at("platform").get<std::string>();
    t.id.base = q.at("base").get<std::string>();
    t.id.label = q.at("label").get<std::string>();
    t.from = q.at("from").get<std::string>();
    t.result_digest = q.at("result_digest").get<std::string>();
    if (q.contains("source_digest")) t.source_digest = q["source_digest"].get<std::string>();
    if (q.contains("cves")) t.cves = q["cves"].get<std::vector<std::string>>();
    if (q.contains("urgency")) t.urgency = q["urgency"].get<std::string>();
    if (q.contains("exploited")) t.exploited = q["exploited"].get<bool>();
    if (q.contains("restart")) t.restart = q["restart"].get<std::vector<std::string>>();
    if (q.contains("published")) t.published = q["published"].get<std::int64_t>();
    if (q.contains("revoked")) t.revoked = q["revoked"].get<bool>();
  } catch (const Json::exception& e) {
    return bad(e.what());
  }
  if (t.id.component.empty() || t.id.base.empty() || t.platform.empty()) {
    return bad("component, base and platform must not be empty");
  }
  if (!IsValidLabel(t.id.label)) {
    return bad("label \"" + t.id.label + "\" is not lowercase letters");
  }
  if (t.from != kFromBase && !IsValidLabel(t.from)) {
    return bad("from \"" + t.from + "\" is neither base nor a label");
  }
  if (!IsHexSha256(t.result_digest)) return bad("result_digest is not a SHA-256");
  if (!t.source_digest.empty() && !IsHexSha256(t.source_digest)) {
    return bad("source_digest is not a SHA-256");
  }
  if (!IsValidUrgency(t.urgency)) return bad("urgency \"" + t.urgency + "\" is unknown");
  return t;
}

Json ImprovementTarget::ToCustom() const {
  return Json{{"quietpatch",
               {{"component", id.component},
                {"platform", platform},
                {"base", id.base},
                {"label", id.label},
                {"from", from},
                {"source_digest", source_digest},
                {"result_digest", result_digest},
                {"cves", cves},
                {"urgency", urgency},
                {"exploited", exploited},
                {"restart", restart},
                {"published", published},
                {"revoked", revoked}}}};
}

}  // namespace qp::contract
