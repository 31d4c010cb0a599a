#include "fleetsim/model.h"

#include <algorithm>
#include <cmath>
#include <map>

#define TOML_EXCEPTIONS 1
#include <toml++/toml.h>

#include "core/ascii.h"
#include "core/durable_file.h"

namespace qp::fleetsim {
namespace {

constexpr const char* kAssumed = "default (an assumption; see docs/fleetsim.md)";

Param Fixed(double value, std::string source) { return Param{value, std::move(source)}; }

}  // namespace

Result<Model> DefaultModel(const Calibration& cal) {
  Model m;
  Population& p = m.population;
  // Online patterns: the "5% online less than once a week"; the other shares are
  // assumptions, stated as such in docs/fleetsim.md.
  p.classes = {
      {"always", 0.45, OnlineKind::kAlways},
      {"workday", 0.40, OnlineKind::kDiurnal, 0.85, 8, 2, 4, 12},
      {"evening", 0.10, OnlineKind::kDiurnal, 0.6, 18, 2, 1, 5},
      {"rare", 0.05, OnlineKind::kRare, 1, 0, 0, 1, 3, 10},
  };
  // UTC offsets weighted roughly by Internet users per region (ITU, Facts and Figures 2023:
  // Asia-Pacific about half, then Europe, the Americas, Africa, the Arab States).
  p.zones = {{-8, 0.03},  {-6, 0.04}, {-5, 0.06}, {-4, 0.02}, {-3, 0.05},
             {0, 0.05},   {1, 0.09},  {2, 0.05},  {3, 0.07},  {4, 0.02},
             {5.5, 0.15}, {7, 0.09},  {8, 0.22},  {9, 0.04},  {10, 0.02}};
  QP_ASSIGN_OR_RETURN(Param n_patch, cal.Get("delta.tree_bytes:libssl3 3.0.20 -> 3.0.22"));
  QP_ASSIGN_OR_RETURN(Param n1_patch, cal.Get("delta.tree_bytes:libssl3 3.0.17 -> 3.0.22"));
  QP_ASSIGN_OR_RETURN(p.package_bytes, cal.Get("delta.full_deb_bytes:libssl3 3.0.17 -> 3.0.22"));
  // The fix is libssl3 3.0.22; N runs 3.0.20, N-1 3.0.17. No pair three releases apart is
  // measured, so N-2 and unknown bases take the full package.
  p.bases = {{"N", 0.70, n_patch, false},
             {"N-1", 0.20, n1_patch, false},
             {"N-2", 0.07, {}, true},
             {"unknown", 0.03, {}, true}};

  Costs& c = m.costs;
  QP_ASSIGN_OR_RETURN(c.fanout_s_per_watcher, cal.Get("server.fanout_s_per_watcher"));
  QP_ASSIGN_OR_RETURN(c.watcher_kb, cal.Get("server.watcher_kb"));
  QP_ASSIGN_OR_RETURN(c.reports_per_s, cal.Get("server.reports_per_s.postgresql"));
  QP_ASSIGN_OR_RETURN(c.requests_per_s, cal.Get("server.requests_per_s"));
  QP_ASSIGN_OR_RETURN(c.install_s, cal.Get("store.install_s:libssl3-3.0.17-to-3.0.20"));
  QP_ASSIGN_OR_RETURN(c.install_cpu_s, cal.Get("store.install_cpu_s:libssl3-3.0.17-to-3.0.20"));
  QP_ASSIGN_OR_RETURN(c.loopback_agent_cpu_s, cal.Get("agent.loopback_install_cpu_s"));
  QP_ASSIGN_OR_RETURN(c.loopback_server_cpu_s, cal.Get("server.loopback_install_cpu_s"));

  m.rollout.halt_min_reports = Fixed(20, "quietpatch-server's default [auto_halt] min_reports");
  m.rollout.halt_max_failure_percent =
      Fixed(5, "quietpatch-server's default [auto_halt] max_failure_percent");

  // quietpatchd's defaults (agent.toml: interval 3600 s, jitter 300 s; backoff from 10 s
  // doubling to 6 h); the anchors' published defaults. Every agent checks within 30 s of a
  // session's start (boot or network up), the same for all.
  AgentModel watch{"quietpatch (watch + edge)", AgentKind::kWatch, 3600, 300, 30};
  AgentModel poll{"quietpatch (polling only)", AgentKind::kPoll, 3600, 300, 30};
  AgentModel chrome{"Chrome component updater (5 h)", AgentKind::kPoll, 5 * 3600, 0, 30};
  chrome.backoff = false;
  chrome.reports_per_install = 1;
  AgentModel apt{"Debian unattended-upgrades", AgentKind::kAptTimers, 0, 0, 30, true};
  apt.backoff = false;
  apt.reports_per_install = 0;
  AgentModel mender{"Mender (30 min poll)", AgentKind::kPoll, 1800, 0, 30, true};
  mender.backoff = false;
  mender.reports_per_install = 3;
  AgentModel aktualizr{"aktualizr (10 s poll)", AgentKind::kPoll, 10, 0, 30, true};
  aktualizr.backoff = false;
  m.agents = {watch, poll, chrome, apt, mender, aktualizr};
  m.notes.push_back(std::string("online patterns, time zones, bandwidth, edge: ") + kAssumed);
  return m;
}

// ---- scenario files ---------------------------------------------------------------------

namespace {

class Reader {
 public:
  Reader(std::string file, const Calibration& cal) : file_(std::move(file)), cal_(cal) {}

  Status Bad(const std::string& field, const std::string& problem) const {
    return Error(ErrorCode::kInvalidArgument, file_ + ": " + field + ": " + problem);
  }

  Status Number(const toml::table& t, const char* key, double* out, double min, double max) const {
    if (!t.contains(key)) return {};
    auto v = t[key].value<double>();
    if (!v || !std::isfinite(*v) || *v < min || *v > max) {
      return Bad(key,
                 "expected a number from " + std::to_string(min) + " to " + std::to_string(max));
    }
    *out = *v;
    return {};
  }

  Status Integer(const toml::table& t, const char* key, int* out, int min, int max) const {
    double v = *out;
    QP_RETURN_IF_ERROR(Number(t, key, &v, min, max));
    if (v != std::floor(v)) return Bad(key, "expected an integer");
    *out = static_cast<int>(v);
    return {};
  }

  Status Bool(const toml::table& t, const char* key, bool* out) const {
    if (!t.contains(key)) return {};
    auto v = t[key].value<bool>();
    if (!v) return Bad(key, "expected true or false");
    *out = *v;
    return {};
  }

  Status Text(const toml::table& t, const char* key, std::string* out) const {
    if (!t.contains(key)) return {};
    auto v = t[key].value<std::string>();
    if (!v) return Bad(key, "expected a string");
    *out = *v;
    return {};
  }

  // A number, or the name of a calibration figure.
  Status Figure(const toml::table& t, const char* key, Param* out) const {
    if (!t.contains(key)) return {};
    if (auto name = t[key].value<std::string>()) {
      auto p = cal_.Get(*name);
      if (!p.ok()) return Bad(key, p.error().message());
      *out = *p;
      return {};
    }
    double v = 0;
    QP_RETURN_IF_ERROR(Number(t, key, &v, 0, 1e15));
    *out = Param{v, "scenario " + file_};
    return {};
  }

  const toml::table* Table(const toml::table& t, const char* key) const {
    return t[key].as_table();
  }

  Status Tables(const toml::table& t, const char* key, std::vector<const toml::table*>* out) const {
    out->clear();
    if (!t.contains(key)) return {};
    const toml::array* a = t[key].as_array();
    if (a == nullptr) return Bad(key, "expected an array of tables ([[" + std::string(key) + "]])");
    for (const auto& e : *a) {
      if (!e.is_table()) return Bad(key, "expected tables");
      out->push_back(e.as_table());
    }
    return {};
  }

 private:
  std::string file_;
  const Calibration& cal_;
};

Status ReadAgent(const Reader& r, const toml::table& t, AgentModel* a) {
  std::string kind;
  QP_RETURN_IF_ERROR(r.Text(t, "kind", &kind));
  if (!kind.empty()) {
    static const std::map<std::string, AgentKind> kKinds = {
        {"watch", AgentKind::kWatch}, {"poll", AgentKind::kPoll}, {"apt", AgentKind::kAptTimers}};
    auto it = kKinds.find(kind);
    if (it == kKinds.end()) return r.Bad("kind", "expected watch, poll or apt");
    a->kind = it->second;
  }
  QP_RETURN_IF_ERROR(r.Number(t, "interval_s", &a->interval_s, 1, 1e7));
  QP_RETURN_IF_ERROR(r.Number(t, "jitter_s", &a->jitter_s, 0, 1e7));
  QP_RETURN_IF_ERROR(r.Number(t, "connect_delay_s", &a->connect_delay_s, 0, 86400));
  QP_RETURN_IF_ERROR(r.Bool(t, "full_package", &a->full_package));
  QP_RETURN_IF_ERROR(r.Bool(t, "backoff", &a->backoff));
  QP_RETURN_IF_ERROR(r.Number(t, "max_backoff_s", &a->max_backoff_s, 1, 1e7));
  QP_RETURN_IF_ERROR(r.Integer(t, "reports_per_install", &a->reports_per_install, 0, 10));
  return {};
}

Status ReadScenario(const Reader& r, const toml::table& t, Model* m) {
  QP_RETURN_IF_ERROR(r.Text(t, "name", &m->name));
  double seed = static_cast<double>(m->seed);
  QP_RETURN_IF_ERROR(r.Number(t, "seed", &seed, 0, 9e15));
  m->seed = static_cast<std::uint64_t>(seed);
  QP_RETURN_IF_ERROR(r.Number(t, "horizon_hours", &m->horizon_h, 0.01, 1000));
  QP_RETURN_IF_ERROR(r.Number(t, "step_ms", &m->step_ms, 1, 1000));
  QP_RETURN_IF_ERROR(r.Number(t, "publication_utc_hour", &m->publication_utc_hour, 0, 24));
  QP_RETURN_IF_ERROR(r.Integer(t, "threads", &m->threads, 1, 64));

  if (const toml::table* p = r.Table(t, "population")) {
    Population& pop = m->population;
    double devices = static_cast<double>(pop.devices);
    QP_RETURN_IF_ERROR(r.Number(*p, "devices", &devices, 1, 4e9));
    pop.devices = static_cast<std::uint64_t>(devices);
    QP_RETURN_IF_ERROR(r.Number(*p, "auto_install_share", &pop.auto_install_share, 0, 1));
    QP_RETURN_IF_ERROR(
        r.Number(*p, "started_before_publication_s", &pop.started_before_publication_s, -1, 1e7));
    QP_RETURN_IF_ERROR(r.Figure(*p, "package_bytes", &pop.package_bytes));
    std::vector<const toml::table*> list;
    QP_RETURN_IF_ERROR(r.Tables(*p, "classes", &list));
    if (!list.empty()) pop.classes.clear();
    for (const toml::table* c : list) {
      OnlineClass oc;
      std::string kind = "always";
      QP_RETURN_IF_ERROR(r.Text(*c, "name", &oc.name));
      QP_RETURN_IF_ERROR(r.Text(*c, "kind", &kind));
      if (kind == "always") {
        oc.kind = OnlineKind::kAlways;
      } else if (kind == "diurnal") {
        oc.kind = OnlineKind::kDiurnal;
      } else if (kind == "rare") {
        oc.kind = OnlineKind::kRare;
      } else {
        return r.Bad("population.classes.kind", "expected always, diurnal or rare");
      }
      QP_RETURN_IF_ERROR(r.Number(*c, "share", &oc.share, 0, 1));
      QP_RETURN_IF_ERROR(r.Number(*c, "day_probability", &oc.day_probability, 0, 1));
      QP_RETURN_IF_ERROR(r.Number(*c, "start_hour_mean", &oc.start_hour_mean, 0, 24));
      QP_RETURN_IF_ERROR(r.Number(*c, "start_hour_sd", &oc.start_hour_sd, 0, 12));
      QP_RETURN_IF_ERROR(r.Number(*c, "hours_min", &oc.hours_min, 0, 24));
      QP_RETURN_IF_ERROR(r.Number(*c, "hours_max", &oc.hours_max, 0, 24));
      QP_RETURN_IF_ERROR(r.Number(*c, "mean_days_between", &oc.mean_days_between, 1, 365));
      pop.classes.push_back(oc);
    }
    QP_RETURN_IF_ERROR(r.Tables(*p, "zones", &list));
    if (!list.empty()) pop.zones.clear();
    for (const toml::table* z : list) {
      TimeZone tz;
      QP_RETURN_IF_ERROR(r.Number(*z, "offset_hours", &tz.offset_hours, -12, 14));
      QP_RETURN_IF_ERROR(r.Number(*z, "share", &tz.share, 0, 1));
      pop.zones.push_back(tz);
    }
    QP_RETURN_IF_ERROR(r.Tables(*p, "bases", &list));
    if (!list.empty()) pop.bases.clear();
    for (const toml::table* b : list) {
      Base base;
      QP_RETURN_IF_ERROR(r.Text(*b, "name", &base.name));
      QP_RETURN_IF_ERROR(r.Number(*b, "share", &base.share, 0, 1));
      QP_RETURN_IF_ERROR(r.Figure(*b, "patch_bytes", &base.patch_bytes));
      QP_RETURN_IF_ERROR(r.Bool(*b, "full_package", &base.full_package));
      pop.bases.push_back(base);
    }
  }

  if (t.contains("agents")) {
    const toml::array* names = t["agents"].as_array();
    if (names == nullptr) return r.Bad("agents", "expected an array of agent names");
    std::vector<AgentModel> chosen;
    for (const auto& n : *names) {
      auto name = n.value<std::string>();
      if (!name) return r.Bad("agents", "expected names");
      auto it = std::find_if(m->agents.begin(), m->agents.end(),
                             [&](const AgentModel& a) { return a.name == *name; });
      if (it == m->agents.end()) return r.Bad("agents", "no agent model named \"" + *name + "\"");
      chosen.push_back(*it);
    }
    m->agents = chosen;
  }
  if (const toml::table* agents = r.Table(t, "agent")) {
    for (const auto& entry : *agents) {
      const std::string name(entry.first.str());
      const toml::table* at = entry.second.as_table();
      if (at == nullptr) return r.Bad("agent", "expected [agent.\"<name>\"] tables");
      auto it = std::find_if(m->agents.begin(), m->agents.end(),
                             [&](const AgentModel& a) { return a.name == name; });
      if (it == m->agents.end()) {
        m->agents.push_back(AgentModel{name});
        it = m->agents.end() - 1;
      }
      QP_RETURN_IF_ERROR(ReadAgent(r, *at, &*it));
    }
  }

  if (const toml::table* ro = r.Table(t, "rollout")) {
    Rollout& x = m->rollout;
    if (ro->contains("stages")) {
      const toml::array* a = (*ro)["stages"].as_array();
      if (a == nullptr) return r.Bad("rollout.stages", "expected [[seconds, percent], ...]");
      x.stages.clear();
      for (const auto& e : *a) {
        const toml::array* pair = e.as_array();
        if (pair == nullptr || pair->size() != 2) {
          return r.Bad("rollout.stages", "expected [seconds, percent] pairs");
        }
        auto at = (*pair)[0].value<double>();
        auto pct = (*pair)[1].value<double>();
        if (!at || !pct || *at < 0 || *pct < 0 || *pct > 100) {
          return r.Bad("rollout.stages", "expected seconds >= 0 and a percent from 0 to 100");
        }
        x.stages.push_back({*at, *pct});
      }
    }
    QP_RETURN_IF_ERROR(r.Figure(*ro, "halt_min_reports", &x.halt_min_reports));
    QP_RETURN_IF_ERROR(r.Figure(*ro, "halt_max_failure_percent", &x.halt_max_failure_percent));
    QP_RETURN_IF_ERROR(r.Number(*ro, "operator_halt_at_s", &x.operator_halt_at_s, -1, 1e8));
    QP_RETURN_IF_ERROR(r.Number(*ro, "resume_after_halt_s", &x.resume_after_halt_s, -1, 1e8));
    QP_RETURN_IF_ERROR(r.Bool(*ro, "resume_excludes_failing", &x.resume_excludes_failing));
  }
  if (const toml::table* f = r.Table(t, "failure")) {
    QP_RETURN_IF_ERROR(r.Number(*f, "class_share", &m->failure.class_share, 0, 1));
    QP_RETURN_IF_ERROR(r.Number(*f, "probability", &m->failure.probability, 0, 1));
  }
  if (const toml::table* n = r.Table(t, "network")) {
    QP_RETURN_IF_ERROR(r.Number(*n, "median_mbps", &m->network.median_mbps, 0.01, 1e6));
    QP_RETURN_IF_ERROR(r.Number(*n, "sigma", &m->network.sigma, 0, 5));
    QP_RETURN_IF_ERROR(r.Number(*n, "download_failure_probability",
                                &m->network.download_failure_probability, 0, 0.99));
  }
  if (const toml::table* e = r.Table(t, "edge")) {
    QP_RETURN_IF_ERROR(r.Number(*e, "capacity_gbps", &m->edge.capacity_gbps, 0.001, 1e6));
    QP_RETURN_IF_ERROR(r.Number(*e, "cost_per_gb", &m->edge.cost_per_gb, 0, 100));
  }
  if (const toml::table* c = r.Table(t, "costs")) {
    Costs& x = m->costs;
    QP_RETURN_IF_ERROR(r.Figure(*c, "fanout_s_per_watcher", &x.fanout_s_per_watcher));
    QP_RETURN_IF_ERROR(r.Figure(*c, "watcher_kb", &x.watcher_kb));
    QP_RETURN_IF_ERROR(r.Number(*c, "watcher_memory_mb", &x.watcher_memory_mb, 1, 1e7));
    QP_RETURN_IF_ERROR(r.Figure(*c, "reports_per_s", &x.reports_per_s));
    QP_RETURN_IF_ERROR(r.Figure(*c, "requests_per_s", &x.requests_per_s));
    QP_RETURN_IF_ERROR(r.Figure(*c, "install_s", &x.install_s));
    QP_RETURN_IF_ERROR(r.Figure(*c, "install_cpu_s", &x.install_cpu_s));
    QP_RETURN_IF_ERROR(r.Figure(*c, "loopback_agent_cpu_s", &x.loopback_agent_cpu_s));
    QP_RETURN_IF_ERROR(r.Figure(*c, "loopback_server_cpu_s", &x.loopback_server_cpu_s));
    QP_RETURN_IF_ERROR(r.Integer(*c, "instances", &x.instances, 0, 1'000'000));
  }
  if (const toml::table* h = r.Table(t, "host")) {
    QP_RETURN_IF_ERROR(r.Integer(*h, "cores", &m->host.cores, 0, 4096));
  }
  return {};
}

}  // namespace

Status ParseScenario(std::string_view text, const std::string& name, const Calibration& calibration,
                     Model* model) {
  if (text.size() > kMaxScenarioBytes) {
    return Error(ErrorCode::kTooLarge,
                 name + ": larger than " + std::to_string(kMaxScenarioBytes) + " bytes");
  }
  QP_RETURN_IF_ERROR(CheckAsciiText(text, name));
  toml::table t;
  try {
    t = toml::parse(text, name);
  } catch (const toml::parse_error& e) {
    return Error(ErrorCode::kInvalidArgument, name + ":" + std::to_string(e.source().begin.line) +
                                                  ": " + std::string(e.description()));
  }
  Reader reader(BaseName(name), calibration);
  QP_RETURN_IF_ERROR(ReadScenario(reader, t, model));
  return Validate(*model);
}

Status LoadScenario(Env* env, const std::string& path, const Calibration& calibration,
                    Model* model) {
  QP_ASSIGN_OR_RETURN(auto bytes, ReadFileLimited(env, path, kMaxScenarioBytes));
  return ParseScenario(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()),
                       path, calibration, model);
}

Status Validate(const Model& m) {
  auto bad = [](const std::string& what) { return Error(ErrorCode::kInvalidArgument, what); };
  auto sums_to_one = [](double sum) { return std::fabs(sum - 1) < 1e-6; };
  double sum = 0;
  for (const auto& c : m.population.classes) {
    sum += c.share;
    if (c.hours_min > c.hours_max) return bad("class " + c.name + ": hours_min > hours_max");
  }
  if (m.population.classes.empty() || !sums_to_one(sum))
    return bad("population classes' shares do not add up to 1");
  if (m.population.classes.size() > 255) return bad("at most 255 population classes");
  sum = 0;
  for (const auto& z : m.population.zones) sum += z.share;
  if (m.population.zones.empty() || !sums_to_one(sum))
    return bad("time zones' shares do not add up to 1");
  sum = 0;
  for (const auto& b : m.population.bases) sum += b.share;
  if (m.population.bases.empty() || !sums_to_one(sum))
    return bad("bases' shares do not add up to 1");
  if (m.population.bases.size() > 255) return bad("at most 255 bases");
  if (m.agents.empty()) return bad("no agent model to run");
  if (m.horizon_h * 3.6e6 >= 4.0e9) return bad("horizon_hours: at most 1,100 hours");
  if (std::fmod(1000.0, m.step_ms) != 0) return bad("step_ms: must divide 1000");
  // 16 bytes of state and about 4 of calendar per device; keep a margin below the memory.
  if (m.population.devices > 1'000'000'000ULL) return bad("population.devices: at most 1e9");
  if (m.costs.watcher_kb.value <= 0 || m.costs.reports_per_s.value <= 0 ||
      m.costs.requests_per_s.value <= 0) {
    return bad("costs: watcher_kb, reports_per_s and requests_per_s must be positive");
  }
  return {};
}

}  // namespace qp::fleetsim
