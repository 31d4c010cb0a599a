// The agent in one process with its collaborators injected: a repository written by the
// publisher and served from its directory by a fake transport, and a simulated clock. A
// check, an install, a deferral that ends, a corrupt or interrupted download and reports
// the server refuses, each in milliseconds, with no sockets and no sleeping.
#include "agent/agent.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <map>
#include <thread>

#include "agent/control.h"
#include "contract/device_auth.h"
#include "core/durable_file.h"
#include "core/hash.h"
#include "core/read_counting_env.h"
#include "core/test_dir.h"
#include "core/tree_writer.h"
#include "delta/tree_manifest.h"
#include "online/online_repository.h"
#include "publish/publisher.h"

namespace qp::agent {
namespace {

using Json = nlohmann::json;
using TreeSpec = std::map<std::string, std::string>;

constexpr const char* kRepoUrl = "http://repo.test/repo";
constexpr const char* kServerUrl = "http://repo.test";
// A mirror and an instance that are down: every request to them fails to connect.
constexpr const char* kDownUrl = "http://down.test";

TreeSpec Version(int v) {
  return {{"bin/tool", "tool version " + std::to_string(v) + "\n"},
          {"lib/libcomp.so.1", std::string(20000, 'L') + "lib v" + std::to_string(v)},
          {"share/README", "unchanged\n"}};
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

// The fleet server as the agent sees it: files of the repository directory, a report
// endpoint and a watch endpoint, each with switches to make it fail.
class FakeServer final : public tuf::Fetcher,
                         public Downloader,
                         public ReportSender,
                         public WatchClient,
                         public MetadataProbe {
 public:
  FakeServer(std::string repo_dir, Clock* clock) : repo_dir_(std::move(repo_dir)), clock_(clock) {}

  Transport transport() { return Transport{this, this, this, this, this}; }

  Result<std::vector<std::uint8_t>> Fetch(const std::string& url,
                                          std::uint64_t max_length) override {
    ++metadata_fetches;
    fetched_urls.push_back(url);
    QP_RETURN_IF_ERROR(Reachable(url));
    QP_ASSIGN_OR_RETURN(auto path, Path(url));
    if (url.ends_with("/timestamp.json")) {
      auto body = ReadFileLimited(Env::Default(), path, max_length);
      if (body.ok()) fetched_etag_ = "\"" + HexEncode(Sha256Of(*body)) + "\"";
    }
    auto bytes = ReadFileLimited(Env::Default(), path, max_length);
    if (!bytes.ok() && bytes.error().code() != ErrorCode::kNotFound) {
      return Error(ErrorCode::kTooLarge, url + ": longer than " + std::to_string(max_length));
    }
    return bytes;
  }

  // The ETag is the file's SHA-256, as good as the real server's for this purpose.
  Result<HttpAnswer> Probe(const std::string& url, const std::string& etag) override {
    ++probes;
    QP_ASSIGN_OR_RETURN(auto path, Path(url));
    QP_ASSIGN_OR_RETURN(auto body, ReadFileLimited(Env::Default(), path, 1 << 20));
    std::string current = "\"" + HexEncode(Sha256Of(body)) + "\"";
    if (etag == current) return HttpAnswer{304, "", "", current};
    return HttpAnswer{200, std::string(body.begin(), body.end()), "", current};
  }

  std::string FetchedEtag(const std::string&) override { return fetched_etag_; }

  Result<std::uint64_t> Download(Env* env, const std::string& url, const std::string& partial,
                                 std::uint64_t max_length) override {
    QP_RETURN_IF_ERROR(Reachable(url));
    ++downloads;
    QP_ASSIGN_OR_RETURN(auto path, Path(url));
    QP_ASSIGN_OR_RETURN(auto body, ReadFileLimited(Env::Default(), path, max_length));
    if (corrupt_downloads) body[body.size() / 2] ^= 0xff;
    std::uint64_t have = env->Stat(partial).ok() ? env->Stat(partial)->size : 0;
    resumed_from.push_back(have);
    std::uint64_t end = body.size();
    if (cut_after > 0 && have + cut_after < end) end = have + cut_after;
    QP_ASSIGN_OR_RETURN(auto f, env->NewWritableFile(partial, CreateMode::kAppend, 0600));
    QP_RETURN_IF_ERROR(f->Append(std::span<const std::uint8_t>(body).subspan(have, end - have)));
    QP_RETURN_IF_ERROR(f->Sync());
    QP_RETURN_IF_ERROR(f->Close());
    if (end < body.size()) return Error(ErrorCode::kIo, url + ": connection reset");
    return end;
  }

  static contract::DeviceSignature SignatureOf(const std::vector<std::string>& headers) {
    contract::DeviceSignature sig;
    for (const auto& h : headers) {
      std::string name = h.substr(0, h.find(':')), value = h.substr(h.find(':') + 2);
      if (name == contract::kDeviceHeader) sig.device = value;
      if (name == contract::kTimeHeader) sig.time = value;
      if (name == contract::kNonceHeader) sig.nonce = value;
      if (name == contract::kSignatureHeader) sig.signature = value;
    }
    return sig;
  }

  Result<HttpAnswer> Send(const std::string& url, const std::string& body,
                          const std::vector<std::string>& headers) override {
    QP_RETURN_IF_ERROR(Reachable(url));
    contract::DeviceSignature sig = SignatureOf(headers);
    std::string target = url.substr(std::string(kServerUrl).size());
    if (target == "/v1/enroll") {
      Json j = Json::parse(body);
      if (j["token"] != "qpe_test_token") return HttpAnswer{403, "unknown token", "", ""};
      device_key = j["public_key"];
      ++enrollments;
      return HttpAnswer{require_accept ? 202 : 200, "{}", "", ""};
    }
    if (target != "/v1/reports") return HttpAnswer{404, "", "", ""};
    if (reports_down) return HttpAnswer{503, "", "30", ""};
    auto key = crypto::VerifyingKey::Parse({"ed25519", "ed25519", device_key});
    if (!key.ok() || require_accept ||
        !contract::VerifyDeviceRequest(**key, sig, "POST", target, body, clock_->Now()).ok()) {
      return HttpAnswer{401, "unknown device", "", ""};
    }
    Json j = Json::parse(body);
    if (j["install_id"] != sig.device) return HttpAnswer{403, "", "", ""};
    for (const auto& e : j["events"]) {
      report_states.push_back(e["state"].get<std::string>());
      report_events.push_back(e);
    }
    return HttpAnswer{200, Json{{"stored", j["events"].size()}}.dump(), "", ""};
  }

  Result<HttpAnswer> Watch(const std::string& url, const std::vector<std::string>& headers, long,
                           const std::atomic<bool>*, std::function<void()> waiting) override {
    watch_urls.push_back(url);
    QP_RETURN_IF_ERROR(Reachable(url));
    if (!headers.empty()) {
      contract::DeviceSignature sig = SignatureOf(headers);
      auto key = crypto::VerifyingKey::Parse({"ed25519", "ed25519", device_key});
      if (!key.ok() ||
          !contract::VerifyDeviceRequest(
               **key, sig, "GET", url.substr(std::string(kServerUrl).size()), "", clock_->Now())
               .ok()) {
        return HttpAnswer{401, "unknown device", "", ""};
      }
      signed_watches.push_back(sig.device);
    }
    // Held until the timeout: the client waits meanwhile.
    if (waiting) {
      waiting();
      ++waited_watches;
    }
    return HttpAnswer{204, "", "", ""};
  }

  bool corrupt_downloads = false;
  std::uint64_t cut_after = 0;  // bytes a download sends before the connection drops
  bool reports_down = false;
  bool require_accept = false;
  std::string device_key;  // enrolled
  int enrollments = 0;
  int downloads = 0;
  int metadata_fetches = 0;
  int probes = 0;
  std::vector<std::uint64_t> resumed_from;
  std::vector<std::string> signed_watches;  // the devices that signed their watches
  std::vector<std::string> report_states;
  std::vector<Json> report_events;  // the events whose states are above
  std::vector<std::string> watch_urls;
  int waited_watches = 0;                 // watches whose client was told it waits
  std::vector<std::string> fetched_urls;  // metadata and targets read through Fetch

 private:
  static Status Reachable(const std::string& url) {
    if (url.rfind(kDownUrl, 0) == 0) return Error(ErrorCode::kIo, url + ": connection refused");
    return OkStatus();
  }
  Result<std::string> Path(const std::string& url) {
    std::string prefix = std::string(kRepoUrl) + "/";
    if (url.rfind(prefix, 0) != 0) return Error(ErrorCode::kNotFound, url);
    return repo_dir_ + "/" + url.substr(prefix.size());
  }
  std::string repo_dir_;
  Clock* clock_;
  std::string fetched_etag_;
};

class AgentTest : public ::testing::Test {
 protected:
  void SetUp() override {
    paths_ = {dir_.Sub("repo"), dir_.Sub("keys")};
    ASSERT_TRUE(publish::InitRepository(Env::Default(), &clock_, paths_, {}).ok());
    for (int v = 0; v <= 2; ++v) MakeTree(dir_.Sub("v" + std::to_string(v)), Version(v));
    live_ = dir_.Sub("device/opt/comp");
    MakeTree(live_, Version(0));
    config_dir_ = dir_.Sub("device/etc");
    ASSERT_TRUE(MakeDirs(Env::Default(), config_dir_ + "/components", 0755).ok());
    WriteTestFile(config_dir_ + "/agent.toml", std::string("repository_url = \"") + kRepoUrl +
                                                   "\"\nserver_url = \"" + kServerUrl + "\"\n");
    WriteTestFile(config_dir_ + "/enrollment.token", "qpe_test_token\n");
    WriteTestFile(config_dir_ + "/root.json",
                  ReadTestFile(paths_.repo_dir + "/metadata/1.root.json"));
    WriteTestFile(config_dir_ + "/components/comp.toml",
                  "name = \"comp\"\nplatform = \"linux-x86_64\"\nroot = \"" + live_ +
                      "\"\n[base_version]\nliteral = \"1.0\"\n");
  }

  void Publish(const std::string& label, int version, bool exploited,
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
    s.clock = &clock_;
    ASSERT_TRUE(publish::BuildImprovement(Env::Default(), paths_, s).ok());
    auto p = publish::PublishImprovement(Env::Default(), &clock_, paths_, s.out_dir, 100);
    ASSERT_TRUE(p.ok()) << p.error().ToString();
  }

  std::unique_ptr<Agent> StartAgent(const std::string& policy = "", Env* env = Env::Default()) {
    if (!policy.empty()) WriteTestFile(config_dir_ + "/policy.toml", policy);
    auto config = LoadAgentConfig(Env::Default(), config_dir_, dir_.Sub("device/state"));
    EXPECT_TRUE(config.ok()) << config.error().ToString();
    auto agent = std::make_unique<Agent>(*config, env, &clock_, server_.transport());
    Status s = agent->Start();
    EXPECT_TRUE(s.ok()) << s.error().ToString();
    return agent;
  }

  static Json Comp(const Json& status) { return status["components"][0]; }

  TestDir dir_;
  SimulatedClock clock_{Clock::Real()->Now()};  // the device's and the fake server's
  publish::RepoPaths paths_;
  std::string live_, config_dir_;
  FakeServer server_{dir_.Sub("repo"), &clock_};
};

TEST_F(AgentTest, InstallsAPublishedFixAndReportsItProtected) {
  Publish("a", 1, /*exploited=*/false);
  auto agent = StartAgent();
  ASSERT_TRUE(agent->Check().ok());
  EXPECT_EQ(Digest(live_), Digest(dir_.Sub("v1")));
  Json st = agent->StatusJson();
  EXPECT_EQ(Comp(st)["improvement"], "a");
  EXPECT_EQ(Comp(st)["protected"], true);
  EXPECT_EQ(Comp(st)["cves_mitigated"], Json::array({"CVE-2026-10001"}));
  long retry = 0;
  ASSERT_TRUE(agent->FlushReports(&retry).ok());
  EXPECT_EQ(server_.report_states, (std::vector<std::string>{"downloading", "protected"}));
  // A second check with nothing new installs, downloads and reports nothing.
  ASSERT_TRUE(agent->Check().ok());
  EXPECT_EQ(server_.downloads, 1);
  EXPECT_EQ(agent->PendingReports(), 0u);
}

// Several mirrors and instances: one that is down costs a retry, never the fix or a report.
TEST_F(AgentTest, AMirrorOrAnInstanceThatIsDownIsPassedOver) {
  WriteTestFile(config_dir_ + "/agent.toml",
                std::string("repository_url = [\"") + kDownUrl + "/repo\", \"" + kRepoUrl +
                    "\"]\nserver_url = [\"" + kDownUrl + "\", \"" + kServerUrl + "\"]\n");
  Publish("a", 1, /*exploited=*/false);
  // Whichever the agent starts from (it picks at random), the check gets through.
  for (int run = 0; run < 4; ++run) {
    MakeTree(live_, Version(0));
    std::filesystem::remove_all(dir_.Sub("device/state"));
    server_.report_states.clear();
    auto agent = StartAgent();
    ASSERT_TRUE(agent->Check().ok()) << agent->StatusJson().dump();
    EXPECT_EQ(Digest(live_), Digest(dir_.Sub("v1")));
    // Reports: a failed delivery moves to the next instance; the next one delivers.
    long retry = 0;
    if (!agent->FlushReports(&retry).ok()) {
      ASSERT_TRUE(agent->FlushReports(&retry).ok());
    }
    EXPECT_EQ(agent->PendingReports(), 0u);
    EXPECT_EQ(server_.report_states, (std::vector<std::string>{"downloading", "protected"}));
  }
}

TEST_F(AgentTest, AFullUpdateSupersedesTheFixOnceInStatusAndReports) {
  WriteTestFile(dir_.Sub("device/base-version"), "1.0\n");
  WriteTestFile(config_dir_ + "/components/comp.toml",
                "name = \"comp\"\nplatform = \"linux-x86_64\"\nroot = \"" + live_ +
                    "\"\n[base_version]\nfile = \"" + dir_.Sub("device/base-version") + "\"\n");
  Publish("a", 1, /*exploited=*/false);
  auto agent = StartAgent();
  ASSERT_TRUE(agent->Check().ok());
  EXPECT_EQ(Comp(agent->StatusJson())["improvement"], "a");
  EXPECT_TRUE(Comp(agent->StatusJson())["superseded"].is_null());
  // The next full release replaces the component: version 2.0, its own files.
  ASSERT_TRUE(RemoveTree(Env::Default(), live_).ok());
  MakeTree(live_, Version(2));
  WriteTestFile(dir_.Sub("device/base-version"), "2.0\n");
  // Nothing new is published: an idle check, which still reads the base version's file.
  ASSERT_TRUE(agent->Check().ok());
  Json comp = Comp(agent->StatusJson());
  EXPECT_EQ(comp["base_version"], "2.0");
  EXPECT_EQ(comp["improvement"], "");
  EXPECT_EQ(comp["superseded"],
            (Json{{"improvement", "comp/1.0/a"}, {"label", "a"}, {"by", "base version 2.0"}}));
  EXPECT_EQ(comp["cves_fixed_on_disk"], Json::array());
  ASSERT_TRUE(agent->Check().ok());  // reported once, not at every check
  long retry = 0;
  ASSERT_TRUE(agent->FlushReports(&retry).ok());
  EXPECT_EQ(std::count(server_.report_states.begin(), server_.report_states.end(), "superseded"),
            1);
  EXPECT_EQ(server_.report_states.back(), "superseded");
}

TEST_F(AgentTest, ACheckWithNothingPublishedIsOneConditionalRequestAndHashesNothing) {
  Publish("a", 1, /*exploited=*/false);
  ReadCountingEnv env(Env::Default());
  auto agent = StartAgent("", &env);
  ASSERT_TRUE(agent->Check().ok());
  ASSERT_EQ(Digest(live_), Digest(dir_.Sub("v1")));
  server_.metadata_fetches = server_.probes = 0;
  env.Reset();
  ASSERT_TRUE(agent->Check().ok());
  EXPECT_EQ(server_.probes, 1);
  EXPECT_EQ(server_.metadata_fetches, 0) << "no metadata read, so no signature checked";
  EXPECT_EQ(env.BytesRead(live_ + "/lib/libcomp.so.1"), 0u) << "no live file hashed";
  EXPECT_EQ(agent->StatusJson()["last_check_error"], "");
  // A new fix is published: the probe sees a new timestamp, the full check installs it.
  Publish("b", 2, /*exploited=*/false, {{"a", dir_.Sub("v1")}});
  ASSERT_TRUE(agent->Check().ok());
  EXPECT_EQ(Digest(live_), Digest(dir_.Sub("v2")));
  // Past the reuse limit the full check runs though nothing was published (so a file
  // changed behind the store's back is seen).
  ASSERT_TRUE(agent->Check().ok());
  server_.metadata_fetches = 0;
  clock_.Advance(std::chrono::hours(7));
  ASSERT_TRUE(agent->Check().ok());
  EXPECT_GT(server_.metadata_fetches, 0);
}

TEST_F(AgentTest, ANewTimestampWithTheSameRolloutDoesNotDownloadRolloutJsonAgain) {
  Publish("a", 1, /*exploited=*/false);
  auto agent = StartAgent();
  ASSERT_TRUE(agent->Check().ok());
  auto rollout_reads = [&] {  // the target file, not the rollout role's metadata
    return std::count_if(
        server_.fetched_urls.begin(), server_.fetched_urls.end(), [](const std::string& u) {
          return u.find("/targets/") != std::string::npos && u.ends_with("rollout.json");
        });
  };
  ASSERT_EQ(rollout_reads(), 1);
  // Only the timestamp is signed again: the full check runs, rollout.json is not read.
  clock_.Advance(std::chrono::minutes(1));
  ASSERT_TRUE(online::ResignTimestamp(Env::Default(), &clock_, paths_).ok());
  server_.fetched_urls.clear();
  ASSERT_TRUE(agent->Check().ok());
  EXPECT_FALSE(server_.fetched_urls.empty()) << "the new timestamp was read";
  EXPECT_EQ(rollout_reads(), 0);
  EXPECT_EQ(agent->StatusJson()["last_check_error"], "");
  // A publication changes rollout.json: it is read again, and the fix it rolls out installs.
  Publish("b", 2, /*exploited=*/false, {{"a", dir_.Sub("v1")}});
  server_.fetched_urls.clear();
  ASSERT_TRUE(agent->Check().ok());
  EXPECT_EQ(rollout_reads(), 1);
  EXPECT_EQ(Digest(live_), Digest(dir_.Sub("v2")));
}

TEST_F(AgentTest, ADeferredFixInstallsWhenTheDeferralEndsOnTheAgentsClock) {
  Publish("a", 1, /*exploited=*/false);
  auto agent = StartAgent("defer_hours = 2\n");
  ASSERT_TRUE(agent->Check().ok());
  Json st = agent->StatusJson();
  ASSERT_EQ(Comp(st)["available"]["state"], "deferred");
  EXPECT_EQ(Digest(live_), Digest(dir_.Sub("v0")));
  clock_.Advance(std::chrono::minutes(119));
  ASSERT_TRUE(agent->Check().ok());
  EXPECT_EQ(Digest(live_), Digest(dir_.Sub("v0"))) << "held until two hours have passed";
  clock_.Advance(std::chrono::minutes(2));
  ASSERT_TRUE(agent->Check().ok());
  EXPECT_EQ(Digest(live_), Digest(dir_.Sub("v1")));
}

TEST_F(AgentTest, AnExploitedFixIsNotDeferred) {
  Publish("a", 1, /*exploited=*/true);
  auto agent = StartAgent("defer_hours = 24\n");
  ASSERT_TRUE(agent->Check().ok());
  EXPECT_EQ(Digest(live_), Digest(dir_.Sub("v1")));
}

TEST_F(AgentTest, ExpiredMetadataInstallsNothingAndSaysWhy) {
  Publish("a", 1, /*exploited=*/false);
  auto agent = StartAgent();
  clock_.Advance(std::chrono::hours(24 * 10));  // nobody re-signed the timestamp since
  Status s = agent->Check();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().ToString().find("expired"), std::string::npos) << s.error().ToString();
  EXPECT_EQ(Digest(live_), Digest(dir_.Sub("v0")));
  Json st = agent->StatusJson();
  EXPECT_NE(st["last_check_error"].get<std::string>().find("expired"), std::string::npos);
  EXPECT_TRUE(st["last_check"].is_null());
  long retry = 0;
  ASSERT_TRUE(agent->FlushReports(&retry).ok());
  EXPECT_EQ(server_.report_states, (std::vector<std::string>{"failed"}));
  EXPECT_EQ(server_.report_events[0]["improvement"], "") << "a failed check is about no fix";
}

TEST_F(AgentTest, AFailedCheckLeavesTheInstalledFixItsState) {
  Publish("a", 1, /*exploited=*/false);
  auto agent = StartAgent();
  ASSERT_TRUE(agent->Check().ok());
  clock_.Advance(std::chrono::hours(24 * 10));  // the metadata expired: checks now fail
  ASSERT_FALSE(agent->Check().ok());
  long retry = 0;
  ASSERT_TRUE(agent->FlushReports(&retry).ok());
  ASSERT_EQ(server_.report_states,
            (std::vector<std::string>{"downloading", "protected", "failed"}));
  // The server keeps each device's latest state per fix and halts a rollout on failures:
  // the failed check must not read as the installed fix (a) having failed.
  EXPECT_EQ(server_.report_events[1]["improvement"], "a");
  EXPECT_EQ(server_.report_events[2]["improvement"], "");
  EXPECT_EQ(Digest(live_), Digest(dir_.Sub("v1")));
}

TEST_F(AgentTest, ACorruptDownloadIsDiscardedAndChangesNothing) {
  Publish("a", 1, /*exploited=*/false);
  auto agent = StartAgent();
  server_.corrupt_downloads = true;
  Status s = agent->Check();
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kVerificationFailed) << s.error().ToString();
  EXPECT_EQ(Digest(live_), Digest(dir_.Sub("v0")));
  Json st = agent->StatusJson();
  EXPECT_NE(Comp(st)["last_error"].get<std::string>().find("download of (a) failed"),
            std::string::npos)
      << st.dump();
  // Bytes that are not the signed ones count against the fix (its rollout may halt).
  long retry = 0;
  ASSERT_TRUE(agent->FlushReports(&retry).ok());
  EXPECT_EQ(server_.report_states, (std::vector<std::string>{"downloading", "failed"}));
  EXPECT_EQ(server_.report_events[1]["improvement"], "a");
  // The bad bytes are not kept to be resumed: the next download starts from zero.
  server_.corrupt_downloads = false;
  ASSERT_TRUE(agent->Check().ok());
  EXPECT_EQ(server_.resumed_from, (std::vector<std::uint64_t>{0, 0}));
  EXPECT_EQ(Digest(live_), Digest(dir_.Sub("v1")));
}

TEST_F(AgentTest, AnInterruptedDownloadResumesWhereItStopped) {
  Publish("a", 1, /*exploited=*/false);
  auto agent = StartAgent();
  server_.cut_after = 100;
  ASSERT_FALSE(agent->Check().ok());
  ASSERT_FALSE(agent->Check().ok());
  EXPECT_EQ(Digest(live_), Digest(dir_.Sub("v0")));
  // A cut transfer is not a failed fix: the device is still downloading it, and says why.
  long retry = 0;
  ASSERT_TRUE(agent->FlushReports(&retry).ok());
  EXPECT_EQ(server_.report_states, (std::vector<std::string>(4, "downloading")));
  for (const auto& e : server_.report_events) EXPECT_EQ(e["improvement"], "a");
  EXPECT_NE(server_.report_events[1]["error"].get<std::string>().find("connection reset"),
            std::string::npos)
      << server_.report_events[1].dump();
  EXPECT_EQ(server_.report_events[0]["error"], "");
  server_.cut_after = 0;
  ASSERT_TRUE(agent->Check().ok());
  EXPECT_EQ(server_.resumed_from, (std::vector<std::uint64_t>{0, 100, 200}));
  EXPECT_EQ(Digest(live_), Digest(dir_.Sub("v1")));
}

TEST_F(AgentTest, ReportsWaitWhileTheServerRefusesThemAndKeepItsRetryHint) {
  Publish("a", 1, /*exploited=*/false);
  auto agent = StartAgent();
  ASSERT_TRUE(agent->Check().ok());
  server_.reports_down = true;
  long retry = 0;
  EXPECT_FALSE(agent->FlushReports(&retry).ok());
  EXPECT_EQ(retry, 30);
  EXPECT_EQ(agent->PendingReports(), 2u);
  server_.reports_down = false;
  ASSERT_TRUE(agent->FlushReports(&retry).ok());
  EXPECT_EQ(agent->PendingReports(), 0u);
  EXPECT_EQ(server_.report_states.size(), 2u);
}

TEST_F(AgentTest, TheDeviceEnrollsOnceWithItsOwnKeyAndSignsItsReports) {
  Publish("a", 1, /*exploited=*/false);
  server_.require_accept = true;
  auto agent = StartAgent();
  ASSERT_TRUE(agent->Check().ok());
  long retry = 0;
  Status waiting = agent->FlushReports(&retry);
  ASSERT_FALSE(waiting.ok());
  EXPECT_NE(waiting.error().message().find("waiting for the fleet operator"), std::string::npos);
  Json st = agent->StatusJson();
  EXPECT_EQ(st["enrollment"], "pending");
  EXPECT_EQ(agent->PendingReports(), 2u) << "reports wait, nothing is lost";
  // The key is the device's own, 0600, and the install id is derived from it.
  auto key_info = Env::Default()->Stat(dir_.Sub("device/state/device.key"));
  ASSERT_TRUE(key_info.ok());
  EXPECT_EQ(key_info->mode & 0777, 0600u);
  EXPECT_EQ(Env::Default()->Stat(dir_.Sub("device/state/install_id"))->mode & 0777, 0600u);
  EXPECT_EQ(ReadTestFile(dir_.Sub("device/state/install_id")),
            st["install_id"].get<std::string>() + "\n");
  // Accepted: the reports go, signed; a restarted agent keeps its identity.
  server_.require_accept = false;
  agent.reset();
  agent = StartAgent();
  EXPECT_EQ(agent->StatusJson()["install_id"], st["install_id"]);
  ASSERT_TRUE(agent->FlushReports(&retry).ok());
  EXPECT_EQ(server_.report_states.size(), 2u);
  EXPECT_EQ(agent->StatusJson()["enrollment"], "accepted");
  int enrollments = server_.enrollments;
  ASSERT_TRUE(agent->RemoveNow("comp").ok());
  ASSERT_TRUE(agent->FlushReports(&retry).ok());
  EXPECT_EQ(server_.enrollments, enrollments) << "enrolled once";
  // Without a token there is nothing to enroll with, and status says so.
  ASSERT_EQ(::unlink((config_dir_ + "/enrollment.token").c_str()), 0);
  server_.device_key = "0000";  // the service forgot the device
  ASSERT_TRUE(agent->InstallNow("comp").ok());
  EXPECT_FALSE(agent->FlushReports(&retry).ok());  // 401: enroll again
  Status no_token = agent->FlushReports(&retry);
  ASSERT_FALSE(no_token.ok());
  EXPECT_NE(no_token.error().message().find("no enrollment token"), std::string::npos);
}

TEST_F(AgentTest, AWatchAsksForMetadataNewerThanWhatTheDeviceTrusts) {
  auto agent = StartAgent();
  ASSERT_TRUE(agent->Watch(nullptr).ok());
  ASSERT_TRUE(agent->Check().ok());
  auto woke = agent->Watch(nullptr);
  ASSERT_TRUE(woke.ok());
  EXPECT_FALSE(*woke);
  ASSERT_EQ(server_.watch_urls.size(), 2u);
  EXPECT_NE(server_.watch_urls[0].find("/v1/watch?timestamp=0&"), std::string::npos);
  EXPECT_EQ(server_.watch_urls[1].find("/v1/watch?timestamp=0&"), std::string::npos)
      << "after a check the device asks for a newer version than the one it verified";
  EXPECT_TRUE(server_.signed_watches.empty()) << "not enrolled yet: the watch is anonymous";
  // Each held watch let the agent idle (it unmaps what the request touched meanwhile).
  EXPECT_EQ(server_.waited_watches, 2);
}

TEST_F(AgentTest, AnEnrolledDeviceSignsItsWatchAndEnrollsAgainWhenItIsRefused) {
  Publish("a", 1, /*exploited=*/false);
  auto agent = StartAgent();
  ASSERT_TRUE(agent->Check().ok());
  long retry = 0;
  ASSERT_TRUE(agent->FlushReports(&retry).ok());  // enrolls
  ASSERT_TRUE(agent->Watch(nullptr).ok());
  ASSERT_EQ(server_.signed_watches.size(), 1u);
  EXPECT_EQ(server_.signed_watches[0], agent->StatusJson()["install_id"]);
  server_.device_key.clear();  // the service forgot the device
  EXPECT_FALSE(agent->Watch(nullptr).ok());
  EXPECT_NE(agent->StatusJson()["enrollment"], "accepted");
  ASSERT_TRUE(agent->Watch(nullptr).ok());  // anonymous meanwhile
  EXPECT_EQ(server_.signed_watches.size(), 1u);
}

TEST_F(AgentTest, ARemovedFixIsNotReinstalledByItselfButIsOnRequest) {
  Publish("a", 1, /*exploited=*/false);
  auto agent = StartAgent();
  ASSERT_TRUE(agent->Check().ok());
  ASSERT_TRUE(agent->RemoveNow("comp").ok());
  EXPECT_EQ(Digest(live_), Digest(dir_.Sub("v0")));
  ASSERT_TRUE(agent->Check().ok());
  EXPECT_EQ(Digest(live_), Digest(dir_.Sub("v0")));
  EXPECT_EQ(Comp(agent->StatusJson())["available"]["state"], "available");
  ASSERT_TRUE(agent->InstallNow("comp/1.0/a").ok());
  EXPECT_EQ(Digest(live_), Digest(dir_.Sub("v1")));
  EXPECT_EQ(agent->InstallNow("other").error().code(), ErrorCode::kNotFound);
}

int ConnectUnix(const std::string& path) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path.c_str());
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

TEST_F(AgentTest, ABundlePathThatIsAFifoIsRefusedWithoutBlocking) {
  auto agent = StartAgent();
  ASSERT_EQ(::mkfifo(dir_.Sub("bundle.fifo").c_str(), 0600), 0);
  Status s = agent->InstallBundle(dir_.Sub("bundle.fifo"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("not a regular file"), std::string::npos);
}

TEST_F(AgentTest, TheControlSocketServesOthersWhileAClientDripsAndCapsEachUser) {
  auto agent = StartAgent();
  const std::string socket = dir_.Sub("c.sock");
  ControlServer control(agent.get(), socket,
                        ControlServer::Options{std::chrono::milliseconds(400)});
  ASSERT_TRUE(control.Start().ok());
  // A client dripping a byte every 100 ms: it never completes a request.
  int drip = ConnectUnix(socket);
  ASSERT_GE(drip, 0);
  ASSERT_EQ(::send(drip, "{", 1, MSG_NOSIGNAL), 1);
  // Meanwhile another client is answered.
  auto status = CallControl(socket, Json{{"cmd", "status"}}, 2000);
  ASSERT_TRUE(status.ok()) << status.error().ToString();
  EXPECT_EQ((*status)["ok"], true);
  // The dripping client is cut at the whole-request deadline, however often it sends.
  std::string answer;
  int sent = 0;
  for (; sent < 50; ++sent) {
    if (::send(drip, " ", 1, MSG_NOSIGNAL) != 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    char buf[512];
    ssize_t n = ::recv(drip, buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0) answer.append(buf, static_cast<std::size_t>(n));
    if (n == 0 || answer.find('\n') != std::string::npos) break;
  }
  ::close(drip);
  EXPECT_LT(sent, 50) << "never cut";
  EXPECT_NE(answer.find("too slow"), std::string::npos) << answer;
  // One user holds at most kMaxPerUser connections; the next is told to come back.
  std::vector<int> idle;
  for (int i = 0; i < ControlServer::kMaxPerUser; ++i) idle.push_back(ConnectUnix(socket));
  auto busy = CallControl(socket, Json{{"cmd", "status"}}, 2000);
  ASSERT_TRUE(busy.ok());
  EXPECT_EQ((*busy)["code"], "busy") << busy->dump();
  for (int fd : idle) ::close(fd);
  bool served = false;
  for (int i = 0; i < 100 && !served; ++i) {
    auto again = CallControl(socket, Json{{"cmd", "status"}}, 2000);
    served = again.ok() && (*again)["ok"] == true;
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(served) << "slots come back when the connections end";
  control.Stop();
}

}  // namespace
}  // namespace qp::agent
