// quietpatch-server over real HTTP on loopback, against both report backends: repository
// files (caching, ranges, escapes), watch, reports (validation, idempotence, rate limits),
// admin rollout with token and audit log, auto-halt, slow clients, metrics.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "core/durable_file.h"
#include "core/test_dir.h"
#include "publish/publisher.h"
#include "publish/test_repository.h"
#include "server/server.h"
#include "server/test_config.h"
#include "server/test_device.h"
#include "server/test_http.h"
#include "server/test_postgres.h"

namespace qp::server {
namespace {

using Json = nlohmann::json;

const std::string kAdmin = std::string("Authorization: Bearer ") + kTestAdminToken;

class ServerTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    paths_ = {dir_.Sub("repo"), dir_.Sub("keys")};
    // A small improvement to report about.
    ASSERT_TRUE(publish::MakeTestRepository(dir_, paths_).ok());
    auto made = TestServerConfig(dir_, paths_);
    ASSERT_TRUE(made.ok()) << made.error().ToString();
    config_ = *made;
    config_.report_rate_per_minute = 20;
    config_.auto_halt_min_reports = 4;
    config_.auto_halt_max_failure_percent = 25;
    config_.request_timeout_seconds = 1;
    config_.watch_per_address = 8;
    if (GetParam() == "sqlite") {
      config_.database = "sqlite:" + dir_.Sub("reports.db");
    } else {
      pg_ = std::make_unique<TestPostgres>();
      ASSERT_FALSE(pg_->url().empty()) << pg_->error();
      config_.database = pg_->url();
    }
    {
      auto store = OpenReportStore(config_.database);  // a clean database for each test
      ASSERT_TRUE(store.ok()) << store.error().ToString();
      ASSERT_TRUE((*store)->Clear().ok());
    }
    auto server = Server::Open(config_, Env::Default(), Clock::Real());
    ASSERT_TRUE(server.ok()) << server.error().ToString();
    server_ = std::move(server).value();
    service_ = &server_->service();
    files_ = &server_->files();
    ASSERT_TRUE(server_->Start().ok());
    port_ = server_->port();
  }
  void TearDown() override {
    if (server_) server_->Stop();
  }

  // A new enrollment token for `uses` devices.
  std::string NewToken(int uses = 100, bool require_accept = false) {
    Reply r = Http(port_, "POST", "/v1/admin/enrollments",
                   Json{{"uses", uses}, {"days", 1}, {"require_accept", require_accept}}.dump(),
                   {kAdmin});
    EXPECT_EQ(r.status, 200) << r.body;
    return Json::parse(r.body, nullptr, false).value("token", std::string());
  }
  Reply Enroll(const TestDevice& d, const std::string& token) {
    std::string body = d.EnrollBody(token);
    return Http(port_, "POST", "/v1/enroll", body, d.Sign("POST", "/v1/enroll", body));
  }
  // Device number i, enrolled (with the fixture's token) on first use.
  const TestDevice& Device(int i) {
    auto& d = devices_[i];
    if (!d) {
      d = std::make_unique<TestDevice>();
      if (token_.empty()) token_ = NewToken();
      Reply r = Enroll(*d, token_);
      EXPECT_EQ(r.status, 200) << r.body;
    }
    return *d;
  }
  Reply Post(const TestDevice& d, const std::string& body) {
    return Http(port_, "POST", "/v1/reports", body, d.Sign("POST", "/v1/reports", body));
  }
  Reply PostReport(int device, int seq, const std::string& state, const std::string& label = "a",
                   const std::string& error = "") {
    const TestDevice& d = Device(device);
    return Post(d, ReportBody(d.id(), seq, state, label, error));
  }
  Json Fleet() {
    return Json::parse(Http(port_, "GET", "/v1/fleet/improvements", "", {kAdmin}).body);
  }

  std::map<int, std::unique_ptr<TestDevice>> devices_;
  std::string token_;

  TestDir dir_;
  publish::RepoPaths paths_;
  ServerConfig config_;
  std::unique_ptr<TestPostgres> pg_;
  std::unique_ptr<Server> server_;
  FleetService* service_ = nullptr;
  RepositoryFiles* files_ = nullptr;
  int port_ = 0;
};

TEST_P(ServerTest, ServesRepositoryFilesWithCachingRangesAndNoEscapes) {
  Reply ts = Http(port_, "GET", "/repo/metadata/timestamp.json");
  ASSERT_EQ(ts.status, 200);
  EXPECT_EQ(ts.Header("cache-control"), "public, max-age=1, must-revalidate");
  EXPECT_EQ(ts.body, ReadTestFile(paths_.repo_dir + "/metadata/timestamp.json"));
  std::string etag = ts.Header("etag");
  ASSERT_FALSE(etag.empty());
  EXPECT_EQ(
      Http(port_, "GET", "/repo/metadata/timestamp.json", "", {"If-None-Match: " + etag}).status,
      304);
  Reply root = Http(port_, "GET", "/repo/metadata/1.root.json", "", {"Range: bytes=5-14"});
  EXPECT_EQ(root.status, 206);
  EXPECT_EQ(root.body, ReadTestFile(paths_.repo_dir + "/metadata/1.root.json").substr(5, 10));
  EXPECT_NE(root.Header("content-range").find("bytes 5-14/"), std::string::npos);
  EXPECT_EQ(Http(port_, "GET", "/repo/metadata/1.root.json").Header("cache-control"),
            "public, max-age=31536000, immutable");
  EXPECT_EQ(Http(port_, "GET", "/repo/metadata/1.root.json", "", {"Range: bytes=999999-"}).status,
            416);
  Reply head = Http(port_, "HEAD", "/repo/metadata/1.root.json");
  EXPECT_EQ(head.status, 200);
  EXPECT_TRUE(head.body.empty());
  for (const char* escape :
       {"/repo/metadata/../../token", "/repo/metadata/%2e%2e/%2e%2e/token",
        "/repo/metadata/%252e%252e/token", "/repo/..%2F..%2Ftoken", "/repo/metadata//1.root.json",
        "/repo/metadata/%00", "/repo/keys/timestamp.key"}) {
    EXPECT_EQ(Http(port_, "GET", escape).status / 100, 4) << escape;
  }
  EXPECT_EQ(Http(port_, "POST", "/repo/metadata/timestamp.json").status, 405);
}

TEST_P(ServerTest, ALargeTargetIsStreamedFromDiskWholeAndInRanges) {
  // Larger than the in-memory cache takes: streamed from disk in pieces.
  std::string big(RepositoryFiles::kMaxCachedBytes * 2 + 12345, '\0');
  std::uint64_t x = 88172645463325252ull;
  for (auto& c : big) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    c = static_cast<char>(x);
  }
  std::string name = "/targets/" + std::string(64, 'a') + ".big.qpatch";
  ASSERT_TRUE(WriteFileDurably(Env::Default(), paths_.repo_dir + name, big).ok());
  Reply whole = Http(port_, "GET", "/repo" + name);
  ASSERT_EQ(whole.status, 200);
  EXPECT_EQ(whole.Header("content-length"), std::to_string(big.size()));
  EXPECT_TRUE(whole.body == big) << "streamed body differs (" << whole.body.size() << " bytes)";
  std::uint64_t first = RepositoryFiles::kMaxCachedBytes + 7;
  Reply part =
      Http(port_, "GET", "/repo" + name, "", {"Range: bytes=" + std::to_string(first) + "-"});
  ASSERT_EQ(part.status, 206);
  EXPECT_TRUE(part.body == big.substr(first));
  Reply head = Http(port_, "HEAD", "/repo" + name);
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.Header("content-length"), std::to_string(big.size()));
  EXPECT_TRUE(head.body.empty());
  EXPECT_EQ(
      Http(port_, "GET", "/repo" + name, "", {"If-None-Match: " + whole.Header("etag")}).status,
      304);
}

TEST_P(ServerTest, WatchAnswersWhenNewMetadataIsPublishedAndAtTheTimeout) {
  std::uint64_t v = files_->TimestampVersion();
  Reply old = Http(port_, "GET", "/v1/watch?timestamp=" + std::to_string(v - 1) + "&timeout=5");
  EXPECT_EQ(old.status, 200);
  EXPECT_EQ(Json::parse(old.body)["timestamp"], v);
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(Http(port_, "GET", "/v1/watch?timestamp=" + std::to_string(v) + "&timeout=1").status,
            204);
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(900));
  Reply woke;
  std::thread watcher([&] {
    woke = Http(port_, "GET", "/v1/watch?timestamp=" + std::to_string(v) + "&timeout=30");
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(server_->http().watchers(), 1u);
  auto published = std::chrono::steady_clock::now();
  ASSERT_EQ(Http(port_, "POST", "/v1/admin/rollout", R"({"id":"comp/1.0/a","percent":50})",
                 {"Authorization: Bearer 0123456789abcdef0123456789abcdef"})
                .status,
            200);
  watcher.join();
  EXPECT_EQ(woke.status, 200);
  EXPECT_GT(Json::parse(woke.body)["timestamp"].get<std::uint64_t>(), v);
  EXPECT_LT(std::chrono::steady_clock::now() - published, std::chrono::seconds(2));
  EXPECT_EQ(Http(port_, "GET", "/v1/watch?timestamp=x").status, 400);
}

// Polls `pred` every 20 ms for up to `limit`.
TEST_P(ServerTest, WatchSlotsAreSharedPerAddressAndFreedWhenClientsHangUp) {
  std::string watch = "GET /v1/watch?timestamp=" + std::to_string(files_->TimestampVersion()) +
                      "&timeout=60 HTTP/1.1\r\nHost: t\r\n\r\n";
  std::vector<int> fds;
  for (int i = 0; i < 8; ++i) {
    int fd = Connect(port_);
    ASSERT_GE(fd, 0);
    ASSERT_GT(::send(fd, watch.data(), watch.size(), MSG_NOSIGNAL), 0);
    fds.push_back(fd);
  }
  ASSERT_TRUE(Eventually([&] { return server_->http().watchers() == 8u; }));
  // This address holds its share: the next watch is refused at once, other requests served.
  Reply refused =
      Http(port_, "GET",
           "/v1/watch?timestamp=" + std::to_string(files_->TimestampVersion()) + "&timeout=60");
  EXPECT_EQ(refused.status, 429);
  EXPECT_FALSE(refused.Header("retry-after").empty());
  EXPECT_EQ(Http(port_, "GET", "/repo/metadata/timestamp.json").status, 200);
  // The clients hang up: their slots are free at once, not at their timeout (60 s).
  for (int fd : fds) ::close(fd);
  ASSERT_TRUE(Eventually([&] { return server_->http().watchers() == 0u; }))
      << server_->http().watchers() << " watchers left";
  // A watch answered on a kept-alive connection leaves it usable for the next request.
  int fd = Connect(port_);
  ASSERT_GT(::send(fd, watch.data(), watch.size(), MSG_NOSIGNAL), 0);
  ASSERT_TRUE(Eventually([&] { return server_->http().watchers() == 1u; }));
  ASSERT_EQ(
      Http(port_, "POST", "/v1/admin/rollout", R"({"id":"comp/1.0/a","percent":40})", {kAdmin})
          .status,
      200);
  std::string got;
  char buf[4096];
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  while (got.find("}") == std::string::npos) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    got.append(buf, static_cast<std::size_t>(n));
  }
  EXPECT_EQ(got.substr(0, 12), "HTTP/1.1 200") << got;
  std::string next =
      "GET /repo/metadata/timestamp.json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
  ASSERT_GT(::send(fd, next.data(), next.size(), MSG_NOSIGNAL), 0);
  got.clear();
  ssize_t n;
  while ((n = ::recv(fd, buf, sizeof(buf), 0)) > 0) got.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  EXPECT_EQ(got.substr(0, 12), "HTTP/1.1 200") << got;
}

TEST_P(ServerTest, SignedWatchesHaveAShareOfTheirOwnPerDeviceAndForgedOnesAreRefused) {
  const std::string target =
      "/v1/watch?timestamp=" + std::to_string(files_->TimestampVersion()) + "&timeout=60";
  auto open_watch = [&](const std::vector<std::string>& headers) {
    int fd = Connect(port_);
    std::string req = "GET " + target + " HTTP/1.1\r\nHost: t\r\n";
    for (const auto& h : headers) req += h + "\r\n";
    req += "\r\n";
    EXPECT_GT(::send(fd, req.data(), req.size(), MSG_NOSIGNAL), 0);
    return fd;
  };
  std::vector<int> fds;
  // The address's anonymous share is taken...
  for (int i = 0; i < config_.watch_per_address; ++i) fds.push_back(open_watch({}));
  ASSERT_TRUE(Eventually([&] {
    return server_->http().watchers() == static_cast<std::size_t>(config_.watch_per_address);
  }));
  // ...yet each enrolled device (here behind the same address) still watches, up to its
  // own share.
  const TestDevice& a = Device(1);
  const TestDevice& b = Device(2);
  for (int i = 0; i < config_.watch_per_device; ++i)
    fds.push_back(open_watch(a.Sign("GET", target, "")));
  fds.push_back(open_watch(b.Sign("GET", target, "")));
  std::size_t expected =
      static_cast<std::size_t>(config_.watch_per_address + config_.watch_per_device + 1);
  ASSERT_TRUE(Eventually([&] { return server_->http().watchers() == expected; }))
      << server_->http().watchers();
  EXPECT_EQ(Http(port_, "GET", target, "", a.Sign("GET", target, "")).status, 429)
      << "device a holds its share";
  // Forged, replayed, stranger's and revoked-device watches are refused, not made anonymous.
  TestDevice stranger;
  EXPECT_EQ(Http(port_, "GET", target, "", stranger.Sign("GET", target, "")).status, 401);
  const std::string now_target =
      "/v1/watch?timestamp=" + std::to_string(files_->TimestampVersion()) + "&timeout=0";
  auto replayed = b.Sign("GET", now_target, "");
  EXPECT_EQ(Http(port_, "GET", now_target, "", replayed).status, 204);
  EXPECT_EQ(Http(port_, "GET", now_target, "", replayed).status, 401);
  auto forged = b.Sign("GET", target + "0", "");
  EXPECT_EQ(Http(port_, "GET", target, "", forged).status, 401);
  EXPECT_EQ(server_->http().watchers(), expected);
  for (int fd : fds) ::close(fd);
  ASSERT_TRUE(Eventually([&] { return server_->http().watchers() == 0u; }));
}

TEST_P(ServerTest, ReportsAreValidatedStoredOnceAndRateLimitedPerDevice) {
  Reply ok = PostReport(1, 1, "protected");
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(Json::parse(ok.body)["stored"], 1);
  EXPECT_EQ(Json::parse(PostReport(1, 1, "protected").body)["stored"], 0);
  EXPECT_EQ(Post(Device(1), "{not json").status, 400);
  Reply bad_state = PostReport(2, 1, "exploded");
  EXPECT_EQ(bad_state.status, 400);
  EXPECT_NE(bad_state.body.find("unknown state"), std::string::npos);
  EXPECT_EQ(Post(Device(1), ReportBody("not-hex", 1, "protected")).status, 400);
  EXPECT_EQ(Http(port_, "POST", "/v1/reports", std::string(300 * 1024, ' ')).status, 413);
  // A flood from one device is cut; another device is still served.
  int limited = 0;
  for (int i = 0; i < 40; ++i) {
    Reply r = PostReport(3, i + 1, "downloading");
    if (r.status == 429) {
      ++limited;
      EXPECT_FALSE(r.Header("retry-after").empty());
    }
  }
  EXPECT_GT(limited, 10);
  EXPECT_EQ(PostReport(4, 1, "protected").status, 200);
  EXPECT_EQ(Fleet()["improvements"][0]["devices"]["protected"], 2);
}

TEST_P(ServerTest, UnsignedForgedAndReplayedReportsAreRefusedAndNeverCounted) {
  // Twenty strangers report failures: nothing is stored, nothing is halted.
  for (int i = 0; i < 20; ++i) {
    TestDevice stranger;
    std::string body = ReportBody(stranger.id(), 1, "failed", "a", "forged");
    EXPECT_EQ(Http(port_, "POST", "/v1/reports", body).status, 401);  // unsigned
    Reply r = Http(port_, "POST", "/v1/reports", body, stranger.Sign("POST", "/v1/reports", body));
    EXPECT_EQ(r.status, 401) << r.body;  // signed, but never enrolled
  }
  // An enrolled device's signature does not carry over to another body, a replay, or a
  // stale clock.
  const TestDevice& d = Device(1);
  std::string body = ReportBody(d.id(), 1, "failed", "a", "x");
  auto headers = d.Sign("POST", "/v1/reports", body);
  EXPECT_EQ(Http(port_, "POST", "/v1/reports", ReportBody(d.id(), 2, "failed"), headers).status,
            401);
  EXPECT_EQ(Http(port_, "POST", "/v1/reports", body, headers).status, 200);
  EXPECT_EQ(Http(port_, "POST", "/v1/reports", body, headers).status, 401) << "a replay";
  EXPECT_EQ(
      Http(port_, "POST", "/v1/reports", body,
           d.Sign("POST", "/v1/reports", body, Clock::Real()->Now() - std::chrono::minutes(10)))
          .status,
      401);
  // A device reports for itself only.
  EXPECT_EQ(Post(d, ReportBody(Device(2).id(), 1, "failed")).status, 403);
  auto events = OpenReportStore(config_.database).value()->CountEvents();
  EXPECT_EQ(*events, 1);
  auto rollout = online::ReadRollout(Env::Default(), Clock::Real(), paths_).value().ToJson();
  EXPECT_EQ(rollout["improvements"]["comp/1.0/a"]["halted"], false);
  // 20 unsigned, 20 from strangers, another body, a replay, a stale clock.
  EXPECT_NE(Http(port_, "GET", "/metrics").body.find("qp_reports_rejected_total 43\n"),
            std::string::npos);
}

TEST_P(ServerTest, EnrollmentTokensAreLimitedAndRevocationShutsDevicesOut) {
  std::string token = NewToken(/*uses=*/2);
  TestDevice a, b, c;
  EXPECT_EQ(Enroll(a, token).status, 200);
  EXPECT_EQ(Enroll(a, token).status, 200) << "enrolling again takes no second use";
  EXPECT_EQ(Enroll(b, token).status, 200);
  Reply used_up = Enroll(c, token);
  EXPECT_EQ(used_up.status, 403);
  EXPECT_NE(used_up.body.find("used up"), std::string::npos) << used_up.body;
  EXPECT_EQ(Enroll(c, token.substr(0, token.size() - 1) + "0").status, 403);
  EXPECT_EQ(Enroll(c, "qpe_nothing_here").status, 403);
  // The enrollment body must be signed by the key it enrolls.
  std::string body = c.EnrollBody(NewToken());
  EXPECT_EQ(Http(port_, "POST", "/v1/enroll", body, a.Sign("POST", "/v1/enroll", body)).status,
            401);

  // A device that needs acceptance reports nothing until an operator accepts it.
  std::string gated = NewToken(5, /*require_accept=*/true);
  Reply pending = Enroll(c, gated);
  EXPECT_EQ(pending.status, 202);
  EXPECT_EQ(Post(c, ReportBody(c.id(), 1, "protected")).status, 403);
  Reply devices = Http(port_, "GET", "/v1/admin/devices", "", {kAdmin});
  ASSERT_EQ(devices.status, 200);
  EXPECT_EQ(Json::parse(devices.body).size(), 3u);
  EXPECT_EQ(Http(port_, "GET", "/v1/admin/devices").status, 401);
  ASSERT_EQ(
      Http(port_, "POST", "/v1/admin/devices/accept", Json{{"id", c.id()}}.dump(), {kAdmin}).status,
      200);
  EXPECT_EQ(Post(c, ReportBody(c.id(), 1, "protected")).status, 200);

  // Revoking the first token revokes both of its devices: refused, and no longer counted.
  EXPECT_EQ(Post(a, ReportBody(a.id(), 1, "protected")).status, 200);
  EXPECT_EQ(Fleet()["improvements"][0]["devices"]["protected"], 2);
  std::string enrollment_id = token.substr(4, token.find('_', 4) - 4);
  Reply revoked = Http(port_, "POST", "/v1/admin/enrollments/revoke",
                       Json{{"id", enrollment_id}}.dump(), {kAdmin});
  ASSERT_EQ(revoked.status, 200) << revoked.body;
  EXPECT_EQ(Json::parse(revoked.body)["devices_revoked"], 2);
  EXPECT_EQ(Post(a, ReportBody(a.id(), 2, "protected")).status, 403);
  EXPECT_EQ(Fleet()["improvements"][0]["devices"]["protected"], 1);
  EXPECT_EQ(
      Http(port_, "POST", "/v1/admin/devices/accept", Json{{"id", a.id()}}.dump(), {kAdmin}).status,
      400)
      << "a revoked device stays revoked";
  // Each action is in the audit trail (a file on SQLite, a table on PostgreSQL); no token is.
  Reply trail = Http(port_, "GET", "/v1/admin/audit", "", {kAdmin});
  ASSERT_EQ(trail.status, 200);
  const std::string& audit = trail.body;
  EXPECT_NE(audit.find("\"enrollments/revoke\""), std::string::npos);
  EXPECT_NE(audit.find("\"devices/accept\""), std::string::npos);
  EXPECT_EQ(audit.find(token.substr(token.rfind('_') + 1)), std::string::npos);
}

TEST_P(ServerTest, FleetViewsNeedAViewerOrAdminTokenAndOnlyAdminsSeeTheAuditTrail) {
  WriteTestFile(dir_.Sub("viewer"), "viewer-viewer-viewer-viewer\n");
  ::chmod(dir_.Sub("viewer").c_str(), 0600);
  server_->Stop();
  config_.viewer_token_file = dir_.Sub("viewer");
  auto server = Server::Open(config_, Env::Default(), Clock::Real());
  ASSERT_TRUE(server.ok());
  server_ = std::move(server).value();
  ASSERT_TRUE(server_->Start().ok());
  port_ = server_->port();
  ASSERT_EQ(
      Http(port_, "POST", "/v1/admin/rollout", R"({"id":"comp/1.0/a","percent":50})", {kAdmin})
          .status,
      200);
  EXPECT_EQ(Http(port_, "GET", "/v1/fleet/improvements").status, 401);
  Reply viewer = Http(port_, "GET", "/v1/fleet/improvements", "",
                      {"Authorization: Bearer viewer-viewer-viewer-viewer"});
  ASSERT_EQ(viewer.status, 200);
  EXPECT_TRUE(Json::parse(viewer.body)["improvements"][0]["history"].empty());
  EXPECT_EQ(Fleet()["improvements"][0]["history"][0]["action"], "rollout");
  EXPECT_EQ(Http(port_, "GET", "/v1/admin/audit", "",
                 {"Authorization: Bearer viewer-viewer-viewer-viewer"})
                .status,
            401);
}

TEST_P(ServerTest, AdminChangesNeedTheTokenAndAreAudited) {
  Reply denied = Http(port_, "POST", "/v1/admin/rollout", R"({"id":"comp/1.0/a","halted":true})",
                      {"Authorization: Bearer wrong-token-wrong-token"});
  EXPECT_EQ(denied.status, 401);
  EXPECT_EQ(Http(port_, "POST", "/v1/admin/rollout", R"({"id":"comp/1.0/a","halted":true})").status,
            401);
  Reply ok = Http(port_, "POST", "/v1/admin/rollout",
                  R"({"id":"comp/1.0/a","halted":true,"reason":"ops"})",
                  {"Authorization: Bearer 0123456789abcdef0123456789abcdef"});
  ASSERT_EQ(ok.status, 200) << ok.body;
  auto rollout = online::ReadRollout(Env::Default(), Clock::Real(), paths_).value().ToJson();
  EXPECT_EQ(rollout["improvements"]["comp/1.0/a"]["halted"], true);
  EXPECT_EQ(Http(port_, "POST", "/v1/admin/rollout", R"({"id":"comp/1.0/zz","percent":5})",
                 {"Authorization: Bearer 0123456789abcdef0123456789abcdef"})
                .status,
            404);
  Reply audit = Http(port_, "GET", "/v1/admin/audit", "",
                     {"Authorization: Bearer 0123456789abcdef0123456789abcdef"});
  ASSERT_EQ(audit.status, 200);
  Json entries = Json::parse(audit.body);
  ASSERT_GE(entries.size(), 3u);
  // The two refusals in a row from one address: one record that counts them.
  EXPECT_EQ(entries[0]["result"], "refused: invalid token");
  EXPECT_EQ(entries[1]["result"], "ok");
  EXPECT_EQ(entries[1]["details"]["reason"], "ops");
  EXPECT_EQ(Http(port_, "GET", "/v1/admin/audit").status, 401);
}

TEST_P(ServerTest, HaltsARolloutByItselfWhenFailuresCrossTheRule) {
  // Rule: at least 4 devices reporting, more than 25% failed or rolled back.
  ASSERT_EQ(PostReport(10, 1, "protected").status, 200);
  ASSERT_EQ(PostReport(11, 1, "protected").status, 200);
  ASSERT_EQ(PostReport(12, 1, "rolled_back", "a", "health check failed").status, 200);
  auto rollout = online::ReadRollout(Env::Default(), Clock::Real(), paths_).value().ToJson();
  EXPECT_EQ(rollout["improvements"]["comp/1.0/a"]["halted"],
            false);  // 3 reports: below the minimum
  ASSERT_EQ(PostReport(13, 1, "failed", "a", "download failed").status, 200);
  rollout = online::ReadRollout(Env::Default(), Clock::Real(), paths_).value().ToJson();
  EXPECT_EQ(rollout["improvements"]["comp/1.0/a"]["halted"], true);
  EXPECT_NE(
      rollout["improvements"]["comp/1.0/a"]["reason"].get<std::string>().find("auto-halt: 2 of 4"),
      std::string::npos);
  Json fleet = Fleet();
  const Json& imp = fleet["improvements"][0];
  EXPECT_EQ(imp["rollout"]["halted"], true);
  EXPECT_EQ(imp["devices"]["failed"], 1);
  EXPECT_EQ(imp["devices"]["rolled_back"], 1);
  EXPECT_EQ(imp["history"][0]["action"], "auto-halt");
  EXPECT_EQ(imp["failure_reasons"].size(), 2u);
  // An operator resumes it.
  ASSERT_EQ(Http(port_, "POST", "/v1/admin/rollout", R"({"id":"comp/1.0/a","halted":false})",
                 {"Authorization: Bearer 0123456789abcdef0123456789abcdef"})
                .status,
            200);
  rollout = online::ReadRollout(Env::Default(), Clock::Real(), paths_).value().ToJson();
  EXPECT_EQ(rollout["improvements"]["comp/1.0/a"]["halted"], false);
  EXPECT_NE(Http(port_, "GET", "/metrics").body.find("qp_auto_halts_total 1"), std::string::npos);
}

TEST_P(ServerTest, SlowAndMalformedClientsAreCutWhileOthersAreServed) {
  int slow = Connect(port_);
  std::string partial = "GET /repo/metadata/timestamp.json HTTP/1.1\r\nHost: x\r\nX-Slow: ";
  ASSERT_GT(::send(slow, partial.data(), partial.size(), MSG_NOSIGNAL), 0);
  EXPECT_EQ(Http(port_, "GET", "/repo/metadata/timestamp.json").status, 200);
  // The slow client is disconnected after the request timeout (1 s here).
  timeval tv{5, 0};
  ::setsockopt(slow, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  char buf[256];
  auto start = std::chrono::steady_clock::now();
  ssize_t n = ::recv(slow, buf, sizeof(buf), 0);
  EXPECT_LE(n, 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(4));
  ::close(slow);
  Reply big = Http(port_, "GET", "/repo/metadata/timestamp.json", "",
                   {"X-Big: " + std::string(10000, 'a')});
  EXPECT_EQ(big.status, 431);
  int garbage = Connect(port_);
  std::string junk = "\x01\x02 nonsense\r\n\r\n";
  (void)::send(garbage, junk.data(), junk.size(), MSG_NOSIGNAL);
  n = ::recv(garbage, buf, sizeof(buf) - 1, 0);
  ::close(garbage);
  ASSERT_GT(n, 12);
  EXPECT_EQ(std::string(buf, 12), "HTTP/1.1 400");
  EXPECT_EQ(Http(port_, "GET", "/repo/metadata/timestamp.json").status, 200);
  std::string metrics = Http(port_, "GET", "/metrics").body;
  EXPECT_NE(metrics.find("qp_http_requests_total{route=\"repo\",code=\"200\"}"), std::string::npos);
  EXPECT_NE(metrics.find("qp_rollout_percent{improvement=\"comp/1.0/a\"} 100"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(Backends, ServerTest, ::testing::Values("sqlite", "postgresql"),
                         [](const auto& param_info) { return param_info.param; });

}  // namespace
}  // namespace qp::server
