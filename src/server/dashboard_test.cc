// The dashboard in headless Chromium (playwright-core): the numbers it shows must match
// the API. Takes a screenshot (docs/dashboard.png, the README's, with QP_UPDATE_SCREENSHOT=1).
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <ctime>

#include "core/durable_file.h"
#include "core/test_dir.h"
#include "core/test_process.h"
#include "publish/publisher.h"
#include "server/server.h"
#include "server/test_device.h"

namespace qp::server {
namespace {

using Json = nlohmann::json;

TEST(DashboardTest, ShowsWhatTheApiSaysInARealBrowser) {
  const char* src = std::getenv("QP_SOURCE_DIR");
  std::string source = src ? src : ".";
  std::string dashboard = source + "/src/server/dashboard";
  ASSERT_TRUE(TestPathExists(dashboard + "/node_modules/playwright-core/package.json"))
      << "run scripts/setup.sh (npm ci in src/server/dashboard)";
  TestDir dir;
  publish::RepoPaths paths{dir.Sub("repo"), dir.Sub("keys")};
  ASSERT_TRUE(publish::InitRepository(Env::Default(), Clock::Real(), paths, {}).ok());
  for (const char* label : {"a", "b"}) {
    ASSERT_TRUE(MakeDirs(Env::Default(), dir.Sub(std::string("v-") + label)).ok());
    WriteTestFile(dir.Sub(std::string("v-") + label + "/libssl.so.3"),
                  std::string("fixed ") + label);
  }
  ASSERT_TRUE(MakeDirs(Env::Default(), dir.Sub("v0")).ok());
  WriteTestFile(dir.Sub("v0/libssl.so.3"), "vulnerable");
  for (const char* label : {"a", "b"}) {
    publish::BuildSpec s;
    s.component = "openssl";
    s.platform = "linux-x86_64";
    s.base = "3.0.17-1~deb12u2";
    s.label = label;
    s.base_tree = dir.Sub("v0");
    s.new_tree = dir.Sub(std::string("v-") + label);
    s.cves = {"CVE-2025-9230"};
    s.urgency = "critical";
    s.exploited = true;
    s.out_dir = dir.Sub(std::string("imp-") + label);
    ASSERT_TRUE(publish::BuildImprovement(Env::Default(), paths, s).ok());
    ASSERT_TRUE(publish::PublishImprovement(Env::Default(), Clock::Real(), paths, s.out_dir,
                                            std::string(label) == "a" ? 100 : 50)
                    .ok());
  }
  ServerConfig config;
  config.listen_port = 0;
  config.repo_dir = paths.repo_dir;
  config.keys_dir = paths.keys_dir;
  config.database = "sqlite:" + dir.Sub("reports.db");
  config.audit_log = dir.Sub("audit.log");
  config.dashboard_dir = dashboard;
  config.auto_halt_min_reports = 1000;
  WriteTestFile(dir.Sub("viewer.token"), "dashboard-viewer-token\n");
  ASSERT_EQ(::chmod(dir.Sub("viewer.token").c_str(), 0600), 0);
  config.viewer_token_file = dir.Sub("viewer.token");
  WriteTestFile(dir.Sub("admin.token"), "dashboard-admin-token\n");
  ASSERT_EQ(::chmod(dir.Sub("admin.token").c_str(), 0600), 0);
  config.admin_token_file = dir.Sub("admin.token");
  auto opened = Server::Open(config, Env::Default(), Clock::Real());
  ASSERT_TRUE(opened.ok()) << opened.error().ToString();
  Server& server = **opened;
  ASSERT_TRUE(server.Start().ok());
  // A fleet's worth of reports: 20 devices on (a), a few on (b).
  // Reports a few seconds after publication, as a fleet would send them.
  const long t0 = static_cast<long>(std::time(nullptr));
  const char* states[] = {"protected", "protected", "protected",  "installed",
                          "failed",    "available", "rolled_back"};
  // Twenty enrolled devices, with a token as an operator would make one.
  const std::string admin = "Bearer dashboard-admin-token";
  ApiResponse made = server.service().AdminDevices("/v1/admin/enrollments", true, admin,
                                                   R"({"uses": 20, "days": 1})", "test");
  ASSERT_EQ(made.status, 200) << made.body;
  const std::string token = Json::parse(made.body)["token"];
  for (int i = 0; i < 20; ++i) {
    TestDevice device;
    const std::string id = device.id();
    const std::string enroll = device.EnrollBody(token);
    ApiResponse enrolled =
        server.service().Enroll(device.Request("POST", "/v1/enroll", enroll), "test");
    ASSERT_EQ(enrolled.status, 200) << enrolled.body;
    std::string label = i < 14 ? "a" : "b";
    Json events = Json::array();
    events.push_back(Json{{"seq", 1},
                          {"time", t0 + 1 + i / 4},
                          {"component", "openssl"},
                          {"platform", "linux-x86_64"},
                          {"base", "3.0.17-1~deb12u2"},
                          {"improvement", label},
                          {"state", "downloading"},
                          {"error", ""},
                          {"restart_needed", Json::array()}});
    std::string state = states[i % 7];
    events.push_back(Json{{"seq", 2},
                          {"time", t0 + 2 + i / 2},
                          {"component", "openssl"},
                          {"platform", "linux-x86_64"},
                          {"base", "3.0.17-1~deb12u2"},
                          {"improvement", label},
                          {"state", state},
                          {"error", state == "failed" ? "health check failed" : ""},
                          {"restart_needed", Json::array()}});
    const std::string report =
        Json{{"install_id", id}, {"agent_version", "0.1.0"}, {"events", events}}.dump();
    ApiResponse r = server.service().PostReports(device.Request("POST", "/v1/reports", report));
    ASSERT_EQ(r.status, 200) << r.body;
  }
  std::string url = "http://127.0.0.1:" + std::to_string(server.port());
  // The screenshot goes to the test's directory; QP_UPDATE_SCREENSHOT=1 writes the one the
  // README shows (docs/dashboard.png) instead: a test run leaves the checkout as it was.
  const char* update = std::getenv("QP_UPDATE_SCREENSHOT");
  std::string shot = update != nullptr && std::string(update) == "1"
                         ? source + "/docs/dashboard.png"
                         : dir.Sub("dashboard.png");
  // The dashboard takes the viewer token from the address (#token=...), as a bookmark would.
  auto run =
      RunCommand({"node", dashboard + "/dashboard_test.mjs", url, shot, "dashboard-viewer-token"});
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("2 improvement(s) checked, 0 mismatch(es)"), std::string::npos)
      << run.output;
  server.Stop();
}

}  // namespace
}  // namespace qp::server
