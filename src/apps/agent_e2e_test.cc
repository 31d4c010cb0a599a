// End to end: real quietpatchd processes and the quietpatch command against a repository
// written by the publisher and served over HTTP on loopback (a small Python stand-in for
// the fleet server: files with ranges, reports, watch). Each test asserts the component's
// files, the status output and the reports received.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <fstream>
#include <thread>

#include "core/durable_file.h"
#include "core/hash.h"
#include "core/test_dir.h"
#include "core/test_process.h"
#include "delta/tree_manifest.h"
#include "publish/publisher.h"

namespace qp {
namespace {

using Json = nlohmann::json;
using TreeSpec = std::map<std::string, std::string>;

// A valid improvement id (the test's own literal).
contract::ImprovementId Id(const std::string& id) {
  return contract::ImprovementId::Parse(id).value();
}

std::string Incompressible(std::size_t n, std::uint32_t seed) {
  std::string s(n, '\0');
  for (auto& c : s) {
    seed = seed * 1664525u + 1013904223u;
    c = static_cast<char>(seed >> 24);
  }
  return s;
}

TreeSpec Version(int v) {
  TreeSpec t = {{"bin/tool", "tool version " + std::to_string(v) + "\n"},
                {"lib/libcomp.so.1", std::string(20000, 'L') + "lib v" + std::to_string(v)},
                {"share/README", "unchanged\n"}};
  // A big incompressible file that changes in every version, so patches are large enough
  // to be cut mid-download.
  t["lib/blob.bin"] = Incompressible(200000, static_cast<std::uint32_t>(v) + 7);
  return t;
}

void MakeTree(const std::string& root, const TreeSpec& spec) {
  for (const auto& [path, content] : spec) {
    std::string full = root + "/" + path;
    ASSERT_TRUE(MakeDirs(Env::Default(), DirName(full), 0755).ok());
    WriteTestFile(full, content);
  }
}

std::string Digest(const std::string& root) {
  auto m = delta::ScanTree(Env::Default(), root);
  return m.ok() ? HexEncode(delta::ManifestDigest(*m)) : "";
}

struct Device {
  std::string name, config, state, live, socket;
  std::unique_ptr<BackgroundProcess> daemon;
};

class AgentE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::chmod(dir_.path().c_str(), 0755);  // the non-admin test reaches the socket through it
    paths_ = {dir_.Sub("repo"), dir_.Sub("keys")};
    ASSERT_TRUE(publish::InitRepository(Env::Default(), Clock::Real(), paths_, {}).ok());
    for (int v = 0; v <= 2; ++v) MakeTree(dir_.Sub("v" + std::to_string(v)), Version(v));
    reports_ = dir_.Sub("reports.jsonl");
    WriteTestFile(reports_, "");
  }

  void StartServer(bool watch, int cut_after = 0, int port = 0) {
    std::vector<std::string> argv = {"python3", "-u",
                                     Source("src/agent/testdata/fleet_test_server.py"),
                                     paths_.repo_dir, reports_};
    if (watch) argv.push_back("--watch");
    if (cut_after > 0) argv.insert(argv.end(), {"--cut-after", std::to_string(cut_after)});
    if (port > 0) argv.insert(argv.end(), {"--port", std::to_string(port)});
    server_ = std::make_unique<BackgroundProcess>(argv);
    std::string banner = server_->WaitForOutput("port ", 10000);
    std::size_t at = banner.find("port ");
    ASSERT_NE(at, std::string::npos) << "test server did not start";
    port_ = std::stoi(banner.substr(at + 5));
  }

  static std::string Source(const std::string& rel) {
    const char* src = std::getenv("QP_SOURCE_DIR");
    return std::string(src ? src : ".") + "/" + rel;
  }

  void Publish(const std::string& label, int version, int percent, bool exploited,
               std::vector<std::pair<std::string, std::string>> earlier = {}) {
    publish::BuildSpec s;
    s.component = "comp";
    s.platform = "linux-x86_64";
    s.base = "1.0";
    s.label = label;
    s.base_tree = dir_.Sub("v0");
    s.earlier = std::move(earlier);
    s.new_tree = dir_.Sub("v" + std::to_string(version));
    s.cves = {"CVE-2026-1000" + std::to_string(version)};
    s.urgency = exploited ? "critical" : "normal";
    s.exploited = exploited;
    s.out_dir = dir_.Sub("imp-" + label);
    ASSERT_TRUE(publish::BuildImprovement(Env::Default(), paths_, s).ok());
    auto p = publish::PublishImprovement(Env::Default(), Clock::Real(), paths_, s.out_dir, percent);
    ASSERT_TRUE(p.ok()) << p.error().ToString();
  }

  Device MakeDevice(const std::string& name, bool watch, const std::string& policy = "",
                    const std::string& health = "true") {
    Device d;
    d.name = name;
    d.config = dir_.Sub(name + "/etc");
    d.state = dir_.Sub(name + "/state");
    d.live = dir_.Sub(name + "/opt/comp");
    d.socket = dir_.Sub(name + "/control.sock");
    MakeTree(d.live, Version(0));
    EXPECT_TRUE(MakeDirs(Env::Default(), d.config + "/components").ok());
    ::chmod(dir_.Sub(name).c_str(), 0755);
    std::string url = "http://127.0.0.1:" + std::to_string(port_);
    WriteTestFile(d.config + "/agent.toml",
                  "repository_url = \"" + url + "/repo\"\nserver_url = \"" + url +
                      "\"\n"
                      "interval_seconds = 1\njitter_seconds = 0\nmax_backoff_seconds = 1\n"
                      "watch_timeout_seconds = 20\nwatch = " +
                      (watch ? "true" : "false") +
                      "\n"
                      "control_socket = \"" +
                      d.socket + "\"\n");
    WriteTestFile(d.config + "/root.json", ReadTestFile(paths_.repo_dir + "/metadata/1.root.json"));
    WriteTestFile(d.config + "/enrollment.token", "qpe_e2e_token\n");
    WriteTestFile(d.config + "/components/comp.toml",
                  "name = \"comp\"\nplatform = \"linux-x86_64\"\nroot = \"" + d.live +
                      "\"\n"
                      "[base_version]\nliteral = \"1.0\"\n[health_check]\ncommand = [\"" +
                      health + "\"]\n");
    if (!policy.empty()) WriteTestFile(d.config + "/policy.toml", policy);
    return d;
  }

  // `fake_offset` (e.g. "+3h") moves the daemon's clock with libfaketime, preloaded into
  // the daemon itself (the faketime wrapper would stand between the test and the daemon).
  void Start(Device& d, const std::string& fake_offset = "") {
    std::vector<std::string> argv = {QP_QUIETPATCHD, "--config-dir", d.config, "--state-dir",
                                     d.state,        "--log-level",  "debug"};
    std::vector<std::string> env;
    if (!fake_offset.empty()) {
      env = {"LD_PRELOAD=/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
             "FAKETIME=" + fake_offset, "ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=0"};
    }
    d.daemon = std::make_unique<BackgroundProcess>(argv, env);
    ASSERT_TRUE(WaitFor(
        d, [](const Json&) { return true; }, 20))
        << "quietpatchd did not answer";
  }

  CommandResult Cli(const Device& d, std::vector<std::string> args,
                    std::vector<std::string> prefix = {}) {
    std::vector<std::string> argv = prefix;
    argv.insert(argv.end(), {QP_QUIETPATCH, "--socket", d.socket});
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  }

  Json Status(const Device& d) {
    auto r = Cli(d, {"--json", "status"});
    if (r.exit_code != 0) return Json();
    Json j = Json::parse(r.output, nullptr, false);
    return j.is_discarded() ? Json() : j;
  }

  template <typename Pred>
  bool WaitFor(const Device& d, Pred pred, int seconds) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (std::chrono::steady_clock::now() < deadline) {
      Json s = Status(d);
      if (!s.is_null() && pred(s)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  static const Json& Comp(const Json& s) { return s["components"][0]; }

  std::vector<Json> Reports(const std::string& state = "") {
    std::vector<Json> out;
    std::ifstream in(reports_);
    std::string line;
    while (std::getline(in, line)) {
      Json j = Json::parse(line, nullptr, false);
      if (!j.is_discarded() && (state.empty() || j["state"] == state)) out.push_back(j);
    }
    return out;
  }

  bool WaitForReport(const std::string& state, int seconds) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (std::chrono::steady_clock::now() < deadline) {
      if (!Reports(state).empty()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  TestDir dir_;
  publish::RepoPaths paths_;
  std::string reports_;
  std::unique_ptr<BackgroundProcess> server_;
  int port_ = 0;
};

TEST_F(AgentE2eTest, ANewImprovementInstallsInTheBackgroundWithNoAction) {
  StartServer(/*watch=*/true);
  Device d = MakeDevice("d1", /*watch=*/true);
  Start(d);
  ASSERT_TRUE(WaitFor(
      d, [](const Json& s) { return !s["last_check"].is_null(); }, 20));
  Publish("a", 1, 100, /*exploited=*/true);
  ASSERT_TRUE(WaitFor(
      d, [](const Json& s) { return Comp(s)["improvement"] == "a"; }, 30))
      << d.daemon->Output();
  EXPECT_EQ(Digest(d.live), Digest(dir_.Sub("v1")));
  Json s = Status(d);
  EXPECT_EQ(Comp(s)["patch_level"], "1.0 (a)");
  EXPECT_EQ(Comp(s)["cves_mitigated"], Json::array({"CVE-2026-10001"}));
  EXPECT_EQ(Comp(s)["protected"], true);
  EXPECT_EQ(s["auto_install"], true);
  ASSERT_TRUE(WaitForReport("protected", 20));
  auto protected_reports = Reports("protected");
  EXPECT_EQ(protected_reports[0]["component"], "comp");
  EXPECT_EQ(protected_reports[0]["improvement"], "a");
  EXPECT_EQ(protected_reports[0]["install_id"].get<std::string>().size(), 32u);
  EXPECT_FALSE(Reports("downloading").empty());
  // Human-readable status says the same.
  auto human = Cli(d, {"status"});
  EXPECT_EQ(human.exit_code, 0);
  EXPECT_NE(human.output.find("version:      1.0 (a)"), std::string::npos) << human.output;
}

TEST_F(AgentE2eTest, AutoInstallOffWaitsForAManualInstallAndRemoveGoesBack) {
  StartServer(/*watch=*/false);
  Device d = MakeDevice("d2", /*watch=*/false);
  Start(d);
  auto off = Cli(d, {"settings", "auto-install", "off"});
  ASSERT_EQ(off.exit_code, 0) << off.output;
  Publish("a", 1, 100, false);
  ASSERT_TRUE(WaitFor(
      d,
      [](const Json& s) {
        return !Comp(s)["available"].is_null() && Comp(s)["available"]["state"] == "available";
      },
      30));
  EXPECT_EQ(Digest(d.live), Digest(dir_.Sub("v0")));
  EXPECT_EQ(Status(d)["auto_install"], false);
  ASSERT_TRUE(WaitForReport("available", 20));

  auto install = Cli(d, {"install"});
  ASSERT_EQ(install.exit_code, 0) << install.output;
  EXPECT_EQ(Digest(d.live), Digest(dir_.Sub("v1")));
  EXPECT_EQ(Comp(Status(d))["improvement"], "a");

  auto remove = Cli(d, {"remove", "comp"});
  ASSERT_EQ(remove.exit_code, 0) << remove.output;
  EXPECT_EQ(Digest(d.live), Digest(dir_.Sub("v0")));
  Json s = Status(d);
  EXPECT_EQ(Comp(s)["improvement"], "");
  auto history = Cli(d, {"history"});
  EXPECT_NE(history.output.find("install base -> (a): committed"), std::string::npos)
      << history.output;
  EXPECT_NE(history.output.find("remove (a) -> base: removed"), std::string::npos);
  ASSERT_TRUE(WaitForReport("removed", 20));
}

TEST_F(AgentE2eTest, ManagedPolicyLocksTheSettingAndDefersOrdinaryFixesOnly) {
  StartServer(/*watch=*/true);
  Device d = MakeDevice("d3", /*watch=*/true, "auto_install = true\ndefer_hours = 2\n");
  Start(d);
  auto off = Cli(d, {"settings", "auto-install", "off"});
  EXPECT_EQ(off.exit_code, 1);
  EXPECT_NE(off.output.find("locked by the managed policy"), std::string::npos) << off.output;
  Json s = Status(d);
  EXPECT_EQ(s["auto_install_locked"], true);

  Publish("a", 1, 100, /*exploited=*/false);
  ASSERT_TRUE(WaitFor(
      d,
      [](const Json& st) {
        return !Comp(st)["available"].is_null() && Comp(st)["available"]["state"] == "deferred";
      },
      30));
  EXPECT_EQ(Digest(d.live), Digest(dir_.Sub("v0")));
  // When the deferral ends is the agent's clock: agent_test covers it on a simulated clock
  // (ADeferredFixInstallsWhenTheDeferralEndsOnTheAgentsClock).
  // An exploited fix is not deferred at all.
  Publish("b", 2, 100, /*exploited=*/true, {{"a", dir_.Sub("v1")}});
  ASSERT_TRUE(WaitFor(
      d, [](const Json& st) { return Comp(st)["improvement"] == "b"; }, 30));
  EXPECT_EQ(Digest(d.live), Digest(dir_.Sub("v2")));
}

TEST_F(AgentE2eTest, RolloutPercentageHaltAndRevocationAreRespected) {
  StartServer(/*watch=*/true);
  Device d = MakeDevice("d4", /*watch=*/true);
  Start(d);
  std::string id = "comp/1.0/a";
  Publish("a", 1, 0, false);
  ASSERT_TRUE(online::SetRollout(Env::Default(), Clock::Real(), paths_, Id(id), std::nullopt, true,
                                 "test halt")
                  .ok());
  ASSERT_TRUE(
      online::SetRollout(Env::Default(), Clock::Real(), paths_, Id(id), 100, std::nullopt, "")
          .ok());
  ASSERT_TRUE(WaitFor(
      d,
      [](const Json& st) {
        return !Comp(st)["available"].is_null() && Comp(st)["available"]["state"] == "halted";
      },
      30));
  EXPECT_EQ(Digest(d.live), Digest(dir_.Sub("v0")));
  ASSERT_TRUE(
      online::SetRollout(Env::Default(), Clock::Real(), paths_, Id(id), std::nullopt, false, "")
          .ok());
  ASSERT_TRUE(WaitFor(
      d, [](const Json& st) { return Comp(st)["improvement"] == "a"; }, 30));
  EXPECT_EQ(Digest(d.live), Digest(dir_.Sub("v1")));
  ASSERT_TRUE(publish::Revoke(Env::Default(), Clock::Real(), paths_, Id(id)).ok());
  ASSERT_TRUE(WaitFor(
      d, [](const Json& st) { return Comp(st)["improvement"] == ""; }, 30));
  EXPECT_EQ(Digest(d.live), Digest(dir_.Sub("v0")));
  ASSERT_TRUE(WaitForReport("rolled_back", 20));
  EXPECT_NE(Reports("rolled_back")[0]["error"].get<std::string>().find("revoked"),
            std::string::npos);
}

TEST_F(AgentE2eTest, CorruptPatchRollbackAndExpiredMetadataInstallNothingAndSayWhy) {
  StartServer(/*watch=*/false);
  std::string old_timestamp = ReadTestFile(paths_.repo_dir + "/metadata/timestamp.json");
  Publish("a", 1, 100, false);
  std::string good_timestamp = ReadTestFile(paths_.repo_dir + "/metadata/timestamp.json");
  // Substitute the patch bytes on the server (same length).
  auto patches = Env::Default()->ListDir(paths_.repo_dir + "/targets/improvements/comp/1.0");
  ASSERT_TRUE(patches.ok());
  for (const auto& name : *patches) {
    std::string path = paths_.repo_dir + "/targets/improvements/comp/1.0/" + name;
    std::string bytes = ReadTestFile(path);
    bytes[bytes.size() / 2] ^= 0x20;
    WriteTestFile(path, bytes);
  }
  Device d = MakeDevice("d5", /*watch=*/false);
  Start(d);
  ASSERT_TRUE(WaitFor(
      d,
      [](const Json& st) {
        return Comp(st)["last_error"].get<std::string>().find("does not match the signed hash") !=
               std::string::npos;
      },
      30))
      << Status(d).dump(2);
  EXPECT_EQ(Digest(d.live), Digest(dir_.Sub("v0")));
  ASSERT_TRUE(WaitForReport("failed", 20));

  // A rolled-back timestamp: refused, with the reason in status and report.
  WriteTestFile(paths_.repo_dir + "/metadata/timestamp.json", old_timestamp);
  ASSERT_TRUE(WaitFor(
      d,
      [](const Json& st) {
        return st["last_check_error"].get<std::string>().find("rollback") != std::string::npos;
      },
      30))
      << Status(d).dump(2);
  // The report follows the status (it is delivered after the check).
  bool reported = false;
  for (int i = 0; i < 200 && !reported; ++i) {
    for (const auto& r : Reports("failed")) {
      reported = reported || r["error"].get<std::string>().find("rollback") != std::string::npos;
    }
    if (!reported) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(reported);

  // Expired metadata: the current files served ten days later are no longer trusted.
  WriteTestFile(paths_.repo_dir + "/metadata/timestamp.json", good_timestamp);
  d.daemon->Stop(SIGTERM);
  Start(d, "+10d");
  ASSERT_TRUE(WaitFor(
      d,
      [](const Json& st) {
        return st["last_check_error"].get<std::string>().find("expired") != std::string::npos;
      },
      30))
      << Status(d).dump(2);
  EXPECT_EQ(Digest(d.live), Digest(dir_.Sub("v0")));
}

TEST_F(AgentE2eTest, DownloadResumesAfterTheServerGoesAwayAndReportsArrive) {
  StartServer(/*watch=*/false, /*cut_after=*/50000);
  int port = port_;
  Device d = MakeDevice("d6", /*watch=*/false);
  Start(d);
  Publish("a", 1, 100, false);
  // The server cuts the first patch download and exits.
  std::string out = server_->WaitForOutput("going away", 30000);
  ASSERT_NE(out, "") << "the download never started";
  server_->Stop(SIGTERM);
  std::this_thread::sleep_for(std::chrono::seconds(2));  // the device retries in vain meanwhile
  EXPECT_EQ(Digest(d.live), Digest(dir_.Sub("v0")));
  StartServer(/*watch=*/false, 0, port);
  ASSERT_TRUE(WaitFor(
      d, [](const Json& st) { return Comp(st)["improvement"] == "a"; }, 40))
      << d.daemon->Output();
  EXPECT_EQ(Digest(d.live), Digest(dir_.Sub("v1")));
  EXPECT_NE(server_->Output().find("range bytes=50000-"), std::string::npos) << server_->Output();
  ASSERT_TRUE(WaitForReport("protected", 20));
  // Every event the device queued reached the server once, in order, with no gaps.
  auto all = Reports();
  for (std::size_t i = 0; i < all.size(); ++i) EXPECT_EQ(all[i]["seq"], i + 1);
}

TEST_F(AgentE2eTest, AnOfflineDeviceInstallsFromABundleVerifiedAsOnline) {
  StartServer(/*watch=*/false);
  Publish("a", 1, 100, /*exploited=*/true);
  std::string bundle = dir_.Sub("a.qpbundle");
  ASSERT_TRUE(
      publish::MakeBundle(Env::Default(), Clock::Real(), paths_, Id("comp/1.0/a"), bundle).ok());
  Device d = MakeDevice("d8", /*watch=*/false);
  // The device has no network: its repository URL leads nowhere.
  std::string toml = ReadTestFile(d.config + "/agent.toml");
  std::string url = "http://127.0.0.1:" + std::to_string(port_);
  for (std::size_t at; (at = toml.find(url)) != std::string::npos;)
    toml.replace(at, url.size(), "http://127.0.0.1:9");
  WriteTestFile(d.config + "/agent.toml", toml);
  Start(d);
  EXPECT_EQ(Digest(d.live), Digest(dir_.Sub("v0")));
  auto install = Cli(d, {"install", "--bundle", bundle});
  ASSERT_EQ(install.exit_code, 0) << install.output;
  EXPECT_EQ(Digest(d.live), Digest(dir_.Sub("v1")));
  EXPECT_EQ(Comp(Status(d))["improvement"], "a");
  // A tampered bundle is refused and changes nothing.
  std::string bytes = ReadTestFile(bundle);
  bytes[bytes.size() - 100] ^= 0x01;
  WriteTestFile(bundle, bytes);
  ASSERT_EQ(Cli(d, {"remove", "comp"}).exit_code, 0);
  auto tampered = Cli(d, {"install", "--bundle", bundle});
  EXPECT_EQ(tampered.exit_code, 1) << tampered.output;
  EXPECT_EQ(Digest(d.live), Digest(dir_.Sub("v0")));
}

TEST_F(AgentE2eTest, ANonAdminUserCanReadStatusButChangeNothing) {
  StartServer(/*watch=*/false);
  Device d = MakeDevice("d7", /*watch=*/false);
  Start(d);
  // As root the command runs as nobody; as anyone else the caller already is no admin.
  std::vector<std::string> nobody;
  if (::geteuid() == 0) nobody = {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"};
  auto status = Cli(d, {"status"}, nobody);
  EXPECT_EQ(status.exit_code, 0) << status.output;
  auto change = Cli(d, {"settings", "auto-install", "off"}, nobody);
  EXPECT_EQ(change.exit_code, 4) << change.output;
  EXPECT_NE(change.output.find("only root"), std::string::npos);
  EXPECT_EQ(Cli(d, {"remove", "comp"}, nobody).exit_code, 4);
  EXPECT_EQ(Status(d)["auto_install"], true);
  d.daemon->Stop(SIGTERM);
  auto gone = Cli(d, {"status"});
  EXPECT_EQ(gone.exit_code, 3);
  EXPECT_NE(gone.output.find("not running"), std::string::npos);
}

}  // namespace
}  // namespace qp
