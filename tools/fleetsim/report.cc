#include "fleetsim/report.h"

#include <cstdarg>
#include <cstdio>
#include <string>

namespace qp::fleetsim {
namespace {

__attribute__((format(printf, 1, 2))) std::string Format(const char* fmt, ...) {
  char buf[512];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buf, sizeof(buf), fmt, args);
  va_end(args);
  return buf;
}

std::string Count(double n) {
  if (n >= 1e9) return Format("%.2fG", n / 1e9);
  if (n >= 1e6) return Format("%.2fM", n / 1e6);
  if (n >= 1e4) return Format("%.1fk", n / 1e3);
  return Format("%.0f", n);
}

std::string Line(const std::string& name, const Param& p, const char* unit) {
  return Format("  %-34s %14.6g %-6s %s\n", name.c_str(), p.value, unit, p.source.c_str());
}

}  // namespace

std::string FormatDuration(double s) {
  if (s < 0) return "not reached";
  if (s < 60) return Format("%.1f s", s);
  if (s < 3600) return Format("%.1f min", s / 60);
  if (s < 2 * 86400) return Format("%.1f h", s / 3600);
  return Format("%.1f d", s / 86400);
}

std::string FormatSources(const Model& m) {
  std::string out = "parameters from the project's measurements (and where each came from):\n";
  const Costs& c = m.costs;
  out += Line("server: fan-out per watcher", c.fanout_s_per_watcher, "s");
  out += Line("server: memory per watcher", c.watcher_kb, "KB");
  out += Line("server: reports stored per second", c.reports_per_s, "/s");
  out += Line("server: timestamp.json requests/s", c.requests_per_s, "/s");
  out += Line("agent: install (stage..fsync)", c.install_s, "s");
  out += Line("agent: install CPU", c.install_cpu_s, "s");
  if (m.host.cores > 0) {
    out += Line("loopback: agent CPU per install", c.loopback_agent_cpu_s, "s");
    out += Line("loopback: server CPU per install", c.loopback_server_cpu_s, "s");
  }
  out += Line("rollout: auto-halt min reports", m.rollout.halt_min_reports, "");
  out += Line("rollout: auto-halt max failure %", m.rollout.halt_max_failure_percent, "%");
  out += Line("full package", m.population.package_bytes, "B");
  for (const Base& b : m.population.bases) {
    if (b.full_package) {
      out += Format("  %-34s %14.4g %-6s the full package (no patch from this base)\n",
                    ("base " + b.name + " (share)").c_str(), b.share, "");
    } else {
      out +=
          Line("patch from base " + b.name + Format(" (share %.2f)", b.share), b.patch_bytes, "B");
    }
  }
  for (const std::string& n : m.notes) out += "  " + n + "\n";
  return out;
}

std::string FormatTable(const Model& m, const std::vector<RunResult>& runs) {
  std::string out = Format("%-32s %9s %9s %9s %9s %9s %8s %9s %9s %9s %9s %9s %9s %5s\n", "agent",
                           "50%", "90%", "95%", "99%", "last", "1h", "egress", "total", "cost",
                           "watchers", "reports", "requests", "inst");
  // reports: the peak minute's average (sizing) and, in the TSV, the peak second.
  out += Format("%-32s %9s %9s %9s %9s %9s %8s %9s %9s %9s %9s %9s %9s %5s\n", "", "", "", "", "",
                "", "(reach)", "Gb/s pk", "TB", "USD", "peak", "/s 1min", "/s peak", "");
  for (const RunResult& r : runs) {
    double share_1h = r.reachable_1h ? 100.0 * static_cast<double>(r.protected_1h) /
                                           static_cast<double>(r.reachable_1h)
                                     : 0;
    out += Format("%-32s %9s %9s %9s %9s %9s %7.1f%% %9.2f %9.3f %9.0f %9s %9s %9s %5d\n",
                  r.agent.c_str(), FormatDuration(r.t50_s).c_str(), FormatDuration(r.t90_s).c_str(),
                  FormatDuration(r.t95_s).c_str(), FormatDuration(r.t99_s).c_str(),
                  FormatDuration(r.t_last_s).c_str(), share_1h, r.peak_egress_gbps,
                  r.total_egress_bytes / 1e12, r.egress_cost, Count(r.peak_watchers).c_str(),
                  Count(r.peak_reports_per_s_minute).c_str(), Count(r.peak_requests_per_s).c_str(),
                  r.instances_needed);
  }
  out += Format(
      "times: from publication until that share of the %s reachable devices (Automatically "
      "Install on, online before the horizon of %.0f h) is protected; 1h: the share protected "
      "within the first hour of those online at some point in it\n",
      runs.empty() ? "0" : Count(static_cast<double>(runs[0].reachable)).c_str(), m.horizon_h);
  for (const RunResult& r : runs) {
    if (r.halted_at_s >= 0) {
      out += Format("%s: halted at %s (%s)", r.agent.c_str(), FormatDuration(r.halted_at_s).c_str(),
                    r.halt_reason.c_str());
      if (r.resumed_at_s >= 0) out += ", resumed at " + FormatDuration(r.resumed_at_s);
      out += Format("; %llu downloads started while halted\n",
                    static_cast<unsigned long long>(r.downloads_started_while_halted));
    }
  }
  if (!runs.empty() && runs[0].online_sample_stride > 1) {
    out += Format("watchers and regular checks are counted on one device in %.0f, and scaled\n",
                  runs[0].online_sample_stride);
  }
  return out;
}

std::string FormatCurves(const std::vector<RunResult>& runs) {
  std::string out = "seconds";
  for (const RunResult& r : runs) out += "\t" + r.agent;
  out += "\n";
  if (runs.empty()) return out;
  for (std::size_t i = 0; i < runs[0].curve.size(); ++i) {
    out += Format("%.3f", runs[0].curve[i].first);
    for (const RunResult& r : runs) {
      out += Format("\t%.6f", i < r.curve.size() ? r.curve[i].second : 0.0);
    }
    out += "\n";
  }
  return out;
}

std::string FormatTsv(const std::vector<RunResult>& runs) {
  std::string out;
  for (const RunResult& r : runs) {
    out += r.agent;
    out += Format("\tdevices=%llu\treachable=%llu\tprotected=%llu",
                  static_cast<unsigned long long>(r.devices),
                  static_cast<unsigned long long>(r.reachable),
                  static_cast<unsigned long long>(r.protected_count));
    out += Format("\tt50_s=%.3f\tt90_s=%.3f\tt95_s=%.3f\tt99_s=%.3f\tt_last_s=%.3f", r.t50_s,
                  r.t90_s, r.t95_s, r.t99_s, r.t_last_s);
    out += Format("\tlast_protected_s=%.3f", r.last_protected_s);
    out += Format("\tprotected_1h=%llu\treachable_1h=%llu",
                  static_cast<unsigned long long>(r.protected_1h),
                  static_cast<unsigned long long>(r.reachable_1h));
    out += Format("\tpeak_egress_gbps=%.3f\ttotal_egress_bytes=%.0f\tcost_usd=%.2f",
                  r.peak_egress_gbps, r.total_egress_bytes, r.egress_cost);
    out += Format("\tpeak_watchers=%.0f\tpeak_reports_per_s=%.0f\tpeak_reports_per_s_minute=%.0f",
                  r.peak_watchers, r.peak_reports_per_s, r.peak_reports_per_s_minute);
    out += Format("\tpeak_requests_per_s=%.0f\tinstances=%d", r.peak_requests_per_s,
                  r.instances_needed);
    out +=
        Format("\tevents=%llu\twall_s=%.2f\n", static_cast<unsigned long long>(r.events), r.wall_s);
  }
  return out;
}

}  // namespace qp::fleetsim
