#include "agent/status_view.h"

#include <algorithm>

namespace qp::agent {

using Json = nlohmann::json;

namespace {

std::string PatchLevel(const std::string& base, const std::string& label) {
  return label.empty() ? base : base + " (" + label + ")";
}

Json OfferedJson(const ComponentView& v) {
  if (!v.offered) return nullptr;
  Json j{{"id", v.offered->Id()},
         {"label", v.offered->id.label},
         {"state", v.offered_state},
         {"cves", v.offered->cves},
         {"urgency", v.offered->urgency},
         {"exploited", v.offered->exploited},
         {"patch_bytes", v.offered->file.length}};
  if (v.offered_state == "deferred") j["deferred_until"] = UnixSeconds(v.deferred_until);
  return j;
}

}  // namespace

Json StatusJson(store::Store& store, const std::vector<store::ComponentConfig>& components,
                const std::map<std::string, ComponentView>& views,
                const std::vector<Improvement>& improvements, const AgentState& state,
                const AgentSummary& summary) {
  static const ComponentView kNoView;
  Json out_components = Json::array();
  for (const auto& c : components) {
    auto view = views.find(c.name);
    const ComponentView& v = view == views.end() ? kNoView : view->second;
    Json j{{"name", c.name}, {"platform", c.platform}};
    auto st = store.GetStatus(c.name);
    if (st.ok()) {
      bool installed = !st->current.label.empty();
      j["base_version"] = st->base_version;
      j["improvement"] = st->current.label;
      j["patch_level"] = PatchLevel(st->base_version, st->current.label);
      j["modified"] = st->modified;
      j["can_remove"] = st->previous.has_value();
      Json restart = Json::array();
      if (installed) {
        auto stale = store.ProcessesNeedingRestart(c.name);
        if (stale.ok()) {
          for (const auto& p : *stale) restart.push_back(Json{{"pid", p.pid}, {"name", p.name}});
        }
      }
      j["restart_needed"] = restart;
      // The CVEs of the improvement installed now (from the signed metadata; what was
      // recorded at install time when the metadata could not be read).
      std::vector<std::string> cves;
      if (auto fix = state.installed.find(c.name); fix != state.installed.end()) {
        cves = fix->second.cves;
      }
      for (const auto& imp : improvements) {
        if (imp.id.component == c.name && imp.id.base == st->base_version &&
            imp.id.label == st->current.label) {
          cves = imp.cves;
        }
      }
      if (!installed) cves.clear();
      j["superseded"] = nullptr;
      if (st->superseded && !installed) {
        const store::Supersession& sup = *st->superseded;
        j["superseded"] = Json{{"improvement", c.name + "/" + sup.base + "/" + sup.label},
                               {"label", sup.label},
                               {"by", sup.by}};
      }
      if (!c.package.empty()) {
        // What dpkg --verify would report: each file changed, dpkg's sum and the one now.
        Json files = Json::array();
        auto differences = store.DifferencesFromDpkg(c.name);
        if (differences.ok()) {
          for (const auto& d : *differences) {
            files.push_back(Json{{"path", d.path}, {"dpkg_md5", d.dpkg_md5}, {"md5", d.live_md5}});
          }
          j["package_files_changed"] = files;
        } else {
          j["package_files_changed"] = nullptr;
          j["package_files_error"] = differences.error().ToString();
        }
      }
      j["cves_fixed_on_disk"] = cves;
      j["cves_mitigated"] = restart.empty() ? cves : std::vector<std::string>();
      j["protected"] = installed && restart.empty();
    } else {
      j["error"] = st.error().ToString();
    }
    j["available"] = OfferedJson(v);
    j["last_error"] = v.last_error;
    out_components.push_back(j);
  }
  Json inactive = Json::array();
  for (const auto& c : summary.inactive) {
    inactive.push_back(Json{{"name", c.name}, {"reason", c.reason}});
  }
  return Json{{"agent_version", summary.agent_version},
              {"inactive", inactive},
              {"auto_install", summary.auto_install},
              {"auto_install_locked", summary.auto_install_locked},
              {"defer_hours", summary.defer.count()},
              {"last_check", summary.last_check ? Json(UnixSeconds(*summary.last_check)) : Json()},
              {"last_check_error", summary.last_check_error},
              {"pending_reports", summary.pending_reports},
              {"install_id", summary.install_id},
              {"enrollment", summary.enrollment},
              {"enrollment_error", summary.enrollment_error},
              {"components", out_components}};
}

Json HistoryJson(store::Store& store, const std::vector<store::ComponentConfig>& components) {
  Json out = Json::array();
  for (const auto& c : components) {
    auto h = store.History(c.name);
    if (!h.ok()) continue;
    for (const auto& e : *h) {
      out.push_back(Json{{"component", c.name},
                         {"time", UnixSeconds(e.time)},
                         {"op", e.op},
                         {"from", e.from},
                         {"to", e.to},
                         {"result", e.result},
                         {"reason", e.reason}});
    }
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const Json& a, const Json& b) { return a["time"] < b["time"]; });
  return out;
}

}  // namespace qp::agent
