#include "fleetsim/calibration.h"

#include <regex>
#include <string>
#include <vector>

#include "core/ascii.h"
#include "core/durable_file.h"

namespace qp::fleetsim {
namespace {

// A result line's shape and the keys its numbers go to. A key ending in ':' takes the
// text of capture group `label_group` (or the current "== case" header) as its suffix.
struct LinePattern {
  const char* file;  // the result file it belongs to
  std::regex re;
  std::vector<std::pair<std::string, int>> keys;  // key, capture group
  int label_group = 0;
  double scale = 1;  // applied to every figure of the line
};

const std::vector<LinePattern>& Patterns() {
  static const std::vector<LinePattern> kPatterns = [] {
    std::vector<LinePattern> p;
    p.push_back(
        {"agent_bench_results.txt",
         std::regex(
             R"(^the demo's libssl3 fix .* per install ([0-9.]+) s agent CPU, ([0-9.]+) s server CPU)"),
         {{"agent.loopback_install_cpu_s", 1}, {"server.loopback_install_cpu_s", 2}}});
    p.push_back(
        {"server_bench_results.txt",
         std::regex(
             R"(^timestamp\.json requests/s at 64 connections: quietpatch-server ([0-9.]+))"),
         {{"server.requests_per_s", 1}}});
    // One instance's rate: the old line ("reports on postgresql: ...") or, since group
    // commits, the one-instance line at 10 events a request, about what a device sends.
    p.push_back(
        {"server_bench_results.txt",
         std::regex(
             R"(^reports on (\w+)(?:, 1 instance(?:\(s\))?, 10 events a request[^:]*)?: .* = ([0-9.]+) events/s stored)"),
         {{"server.reports_per_s.", 2}},
         1});
    p.push_back({"server_bench_results.txt",
                 std::regex(R"(^[0-9]+ idle watchers: .*[ (]([0-9.]+) KB per watcher)"),
                 {{"server.watcher_kb", 1}}});
    p.push_back(
        {"store_bench_results.txt",
         std::regex(
             R"(^install \(stage, verify, swap, keep rollback copy, fsync\): ([0-9.]+) s \(([0-9.]+) s CPU\))"),
         {{"store.install_s:", 1}, {"store.install_cpu_s:", 2}},
         -1});
    p.push_back(
        {"delta_bench_results.txt",
         std::regex(
             R"(^(\S+ \S+ -> \S+)\s+([0-9]+)\s+[0-9.]+\s+[0-9.]+\s+[0-9]+\s+([0-9]+)\s+[0-9.]+\s*$)"),
         {{"delta.tree_bytes:", 2}, {"delta.full_deb_bytes:", 3}},
         1});
    return p;
  }();
  return kPatterns;
}

constexpr std::size_t kMaxLine = 2048;

const std::regex kFanout(R"(^publish to all ([0-9]+) watchers answered: ([0-9.]+) s)");
const std::regex kStoreCase(R"(^== (\S+) \()");

}  // namespace

void Calibration::Parse(std::string_view name, std::string_view text) {
  std::string base(name);
  if (auto slash = base.rfind('/'); slash != std::string::npos) base = base.substr(slash + 1);
  std::string store_case;
  int number = 0;
  for (std::string_view view : Lines(text)) {
    ++number;
    // Result lines are short; a long one is not a result (and std::regex recurses per
    // character).
    if (view.size() > kMaxLine) continue;
    std::string line(view);
    std::string source = std::string(name) + ":" + std::to_string(number) + ": " + line;
    std::smatch m;
    if (std::regex_search(line, m, kStoreCase)) store_case = m[1];
    if (base == "server_bench_results.txt" && std::regex_search(line, m, kFanout)) {
      double watchers = std::stod(m[1]);
      if (watchers > 0) {
        figures_["server.fanout_s_per_watcher"] = {std::stod(m[2]) / watchers, source};
      }
    }
    for (const LinePattern& p : Patterns()) {
      if (base != p.file || !std::regex_search(line, m, p.re)) continue;
      for (const auto& [key, group] : p.keys) {
        std::string full = key;
        if (!key.empty() && (key.back() == ':' || key.back() == '.')) {
          full += p.label_group < 0 ? store_case : std::string(m[p.label_group]);
        }
        figures_[full] = {std::stod(m[group]) * p.scale, source};
      }
    }
  }
}

Result<Calibration> Calibration::Read(Env* env, const std::string& bench_dir) {
  Calibration c;
  for (const char* file : {"agent_bench_results.txt", "server_bench_results.txt",
                           "store_bench_results.txt", "delta_bench_results.txt"}) {
    std::string path = JoinPath(bench_dir, file);
    auto bytes = ReadFileLimited(env, path, 4 << 20);
    if (!bytes.ok()) return bytes.error().WithContext("calibration");
    c.Parse(path, std::string_view(reinterpret_cast<const char*>(bytes->data()), bytes->size()));
  }
  return c;
}

Result<Param> Calibration::Get(const std::string& key) const {
  auto it = figures_.find(key);
  if (it == figures_.end()) {
    return Error(ErrorCode::kNotFound,
                 "calibration: no benchmark result gives " + key +
                     " (run the bench script that prints it, or set it in the scenario)");
  }
  return it->second;
}

}  // namespace qp::fleetsim
