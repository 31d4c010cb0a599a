// quietpatch: the command for the person at the device. Talks to quietpatchd over its
// control socket.
//
//   quietpatch status | history | check | settings auto-install on|off |
//              install [IMPROVEMENT|COMPONENT] | install --bundle FILE | remove COMPONENT
//              [--json] [--socket P]
//
// Exit status: 0 done; 1 the daemon refused or failed (the reason is printed); 2 bad
// usage; 3 the daemon is not running; 4 permission denied.
#include <climits>
#include <cstdlib>

#include <CLI/CLI.hpp>
#include <ctime>
#include <iostream>

#include "agent/control.h"
#include "apps/main_guard.h"
#include "apps/terminal_safe.h"

namespace {

using Json = nlohmann::json;

std::string Time(const Json& t) {
  if (!t.is_number_integer()) return "never";
  std::time_t v = t.get<std::time_t>();
  char buf[64];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&v));
  return buf;
}

std::string Join(const Json& list) {
  std::string out;
  for (const auto& x : list) out += (out.empty() ? "" : ", ") + x.get<std::string>();
  return out.empty() ? "none" : out;
}

void PrintStatus(const Json& s) {
  std::cout << "Automatically Install: " << (s["auto_install"].get<bool>() ? "on" : "off")
            << (s["auto_install_locked"].get<bool>() ? " (locked by your organisation's policy)"
                                                     : "")
            << "\n";
  if (s["defer_hours"].get<int>() > 0) {
    std::cout << "Deferral: " << s["defer_hours"].get<int>()
              << " hours (not for fixes exploited in the wild)\n";
  }
  std::cout << "Enrollment: " << s.value("enrollment", std::string("unknown")) << " (install id "
            << s.value("install_id", std::string("?")) << ")";
  if (!s.value("enrollment_error", std::string()).empty()) {
    std::cout << ": " << s.value("enrollment_error", std::string());
  }
  std::cout << "\n";
  std::cout << "Last check: " << Time(s["last_check"]);
  if (!s["last_check_error"].get<std::string>().empty()) {
    std::cout << " (failed: " << s["last_check_error"].get<std::string>() << ")";
  }
  std::cout << "\n";
  for (const auto& c : s.value("inactive", nlohmann::json::array())) {
    std::cout << "\n"
              << c["name"].get<std::string>() << "\n  inactive: " << c["reason"].get<std::string>()
              << "\n";
  }
  for (const auto& c : s["components"]) {
    std::cout << "\n"
              << c["name"].get<std::string>() << " (" << c["platform"].get<std::string>() << ")\n";
    if (c.contains("error")) {
      std::cout << "  error: " << c["error"].get<std::string>() << "\n";
      continue;
    }
    std::cout << "  version:      " << c["patch_level"].get<std::string>() << "\n";
    std::cout << "  protected:    " << (c["protected"].get<bool>() ? "yes" : "no") << "\n";
    std::cout << "  mitigated:    " << Join(c["cves_mitigated"]) << "\n";
    if (!c["restart_needed"].empty()) {
      std::cout << "  restart needed by:";
      for (const auto& p : c["restart_needed"]) {
        std::cout << " pid " << p["pid"].get<int>() << " (" << p["name"].get<std::string>() << ")";
      }
      std::cout << "\n";
    }
    if (c["modified"].get<bool>())
      std::cout << "  warning: files were modified outside quietpatch\n";
    if (c.contains("superseded") && c["superseded"].is_object()) {
      std::cout << "  superseded:   (" << c["superseded"]["label"].get<std::string>() << ") by "
                << c["superseded"]["by"].get<std::string>() << "\n";
    }
    if (c.contains("package_files_changed") && c["package_files_changed"].is_array()) {
      const Json& files = c["package_files_changed"];
      if (files.empty()) {
        std::cout << "  package files: as dpkg installed them (dpkg --verify is clean)\n";
      } else {
        std::cout << "  package files changed (dpkg's md5sum, now):\n";
        for (const auto& f : files) {
          std::cout << "    " << f["path"].get<std::string>() << "\n      "
                    << f["dpkg_md5"].get<std::string>() << "  "
                    << (f["md5"].get<std::string>().empty() ? "(unreadable)"
                                                            : f["md5"].get<std::string>())
                    << "\n";
        }
      }
    }
    if (!c["available"].is_null()) {
      const Json& a = c["available"];
      std::cout << "  available:    (" << a["label"].get<std::string>() << ") "
                << a["state"].get<std::string>() << ", " << a["urgency"].get<std::string>()
                << (a["exploited"].get<bool>() ? ", exploited in the wild" : "") << ", fixes "
                << Join(a["cves"]) << "\n";
      if (a.contains("deferred_until"))
        std::cout << "  deferred until " << Time(a["deferred_until"]) << "\n";
    }
    if (!c["last_error"].get<std::string>().empty()) {
      std::cout << "  last error:   " << c["last_error"].get<std::string>() << "\n";
    }
  }
}

void PrintHistory(const Json& h) {
  if (h.empty()) std::cout << "No history yet.\n";
  for (const auto& e : h) {
    auto label = [](const Json& l) {
      return l.get<std::string>().empty() ? std::string("base") : "(" + l.get<std::string>() + ")";
    };
    std::cout << Time(e["time"]) << "  " << e["component"].get<std::string>() << "  "
              << e["op"].get<std::string>() << " " << label(e["from"]) << " -> " << label(e["to"])
              << ": " << e["result"].get<std::string>();
    if (!e["reason"].get<std::string>().empty())
      std::cout << " (" << e["reason"].get<std::string>() << ")";
    std::cout << "\n";
  }
}

int Run(int argc, char** argv) {
  // Everything printed may carry text from the repository or the server.
  qp::apps::TerminalSafeStream safe_out(std::cout);
  qp::apps::TerminalSafeStream safe_err(std::cerr);
  CLI::App app{"quietpatch: security improvements on this device"};
  std::string socket = "/run/quietpatch/control.sock";
  bool json = false;
  app.add_option("--socket", socket, "quietpatchd's control socket");
  app.add_flag("--json", json, "machine-readable output");
  app.require_subcommand(1);
  auto* status = app.add_subcommand("status", "what is installed, protected and available");
  auto* history = app.add_subcommand("history", "installs, rollbacks and removals");
  auto* check = app.add_subcommand("check", "check for improvements now");
  auto* settings = app.add_subcommand("settings", "change settings");
  std::string onoff;
  auto* auto_install = settings->add_subcommand("auto-install", "Automatically Install on|off");
  auto_install->add_option("STATE", onoff)->required()->check(CLI::IsMember({"on", "off"}));
  settings->require_subcommand(1);
  auto* install = app.add_subcommand("install", "install an available improvement now");
  std::string what;
  install->add_option("IMPROVEMENT", what, "component or component/base/label (default: all)");
  std::string bundle;
  install->add_option("--bundle", bundle,
                      "install from an offline bundle file (quietpatch-repo bundle)");
  auto* remove = app.add_subcommand("remove", "remove the current improvement of a component");
  std::string component;
  remove->add_option("COMPONENT", component)->required();
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  std::vector<Json> requests;
  if (status->parsed()) requests.push_back({{"cmd", "status"}});
  if (history->parsed()) requests.push_back({{"cmd", "history"}});
  if (check->parsed()) requests.push_back({{"cmd", "check"}});
  if (settings->parsed())
    requests.push_back({{"cmd", "settings"}, {"auto_install", onoff == "on"}});
  if (remove->parsed()) requests.push_back({{"cmd", "remove"}, {"component", component}});
  if (install->parsed() && !bundle.empty()) {
    char resolved[PATH_MAX];
    if (::realpath(bundle.c_str(), resolved) == nullptr) {
      std::cerr << "quietpatch: " << bundle << ": no such file\n";
      return 2;
    }
    requests.push_back({{"cmd", "install_bundle"}, {"path", std::string(resolved)}});
  } else if (install->parsed()) {
    if (!what.empty()) {
      requests.push_back({{"cmd", "install"}, {"what", what}});
    } else {
      // Everything available: ask the daemon which components have something.
      auto st = qp::agent::CallControl(socket, {{"cmd", "status"}}, 10000);
      if (!st.ok()) {
        std::cerr << "quietpatch: " << st.error().message() << "\n";
        return 3;
      }
      for (const auto& c : (*st)["result"]["components"]) {
        if (!c["available"].is_null()) {
          requests.push_back(
              {{"cmd", "install"}, {"what", c["available"]["id"].get<std::string>()}});
        }
      }
      if (requests.empty()) {
        std::cout << "Nothing to install.\n";
        return 0;
      }
    }
  }
  int rc = 0;
  for (const auto& request : requests) {
    auto answer = qp::agent::CallControl(socket, request, 15 * 60 * 1000);
    if (!answer.ok()) {
      std::cerr << "quietpatch: " << answer.error().message() << "\n";
      return answer.error().code() == qp::ErrorCode::kNotFound ? 3 : 1;
    }
    const Json& a = *answer;
    if (!a.value("ok", false)) {
      std::string code = a.value("code", std::string());
      if (json) {
        std::cout << a.dump(2) << "\n";
      } else {
        std::cerr << "quietpatch: " << a.value("error", std::string("failed")) << "\n";
      }
      rc = code == "permission_denied" ? 4 : code == "bad_request" ? 2 : 1;
      continue;
    }
    if (json) {
      std::cout << a["result"].dump(2) << "\n";
    } else if (request["cmd"] == "history") {
      PrintHistory(a["result"]);
    } else {
      PrintStatus(a["result"]);
    }
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) { return qp::apps::GuardedMain("quietpatch", Run, argc, argv); }
