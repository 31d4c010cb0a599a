// The hostile-client suite: the shipped programs (quietpatch-server, quietpatchd and the
// quietpatch command) attacked over loopback as docs/threat-model.md's adversaries would.
// Each attack runs in bounded loops; each test shows the attack refused, what it could take
// from the process (descriptors, memory) bounded, and nothing lost for honest clients.
// Attacks below the network (duplicate key spellings, decompression bombs, NUL bytes in
// names, FIFO bundles, terminal escapes) are attack tests in their own parts; the threat
// model lists every class with the test that shows it.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <fstream>
#include <thread>

#include "core/durable_file.h"
#include "core/test_dir.h"
#include "core/test_process.h"
#include "online/repo_dir.h"
#include "publish/publisher.h"
#include "server/test_device.h"
#include "server/test_http.h"

namespace qp {
namespace {

using Json = nlohmann::json;
using server::Eventually;
using server::Http;
using server::Reply;
using server::TestDevice;

constexpr const char* kImprovement = "comp/1.0/a";

std::string Pseudorandom(std::size_t n, std::uint64_t seed) {
  std::string s(n, '\0');
  for (auto& c : s) {
    seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
    c = static_cast<char>(seed);
  }
  return s;
}

// What /proc says of a running process.
std::size_t OpenDescriptors(pid_t pid) {
  auto names = Env::Default()->ListDir("/proc/" + std::to_string(pid) + "/fd");
  return names.ok() ? names->size() : 0;
}
long ResidentKiB(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return -1;
}

struct Measured {
  int exit_code = -1;
  long max_rss_kib = 0;  // the process's peak resident memory
  std::string output;
};

// Runs argv to its end (killed after `timeout`) and measures its peak memory. fork(), not
// posix_spawn(): a vfork-style child would be charged the test's own peak at exec (it
// shares the test's memory until then); a forked child is charged only what the test holds
// at the time, the same for every measurement as long as the test allocates nothing large
// between them.
Measured RunMeasured(const std::vector<std::string>& argv, const std::string& output_path,
                     std::chrono::seconds timeout = std::chrono::seconds(60)) {
  Measured m;
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  int out = ::open(output_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (out < 0) return m;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out, 1);
    ::dup2(out, 2);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(out);
  if (pid < 0) return m;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  rusage usage{};
  while (::wait4(pid, &status, WNOHANG, &usage) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::wait4(pid, &status, 0, &usage);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  m.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  m.max_rss_kib = usage.ru_maxrss;
  m.output = ReadTestFile(output_path);
  return m;
}

class HostileClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::chmod(dir_.path().c_str(), 0755);
    paths_ = {dir_.Sub("repo"), dir_.Sub("keys")};
    ASSERT_TRUE(publish::InitRepository(Env::Default(), Clock::Real(), paths_, {}).ok());
    for (int v = 0; v <= 1; ++v) {
      std::string root = dir_.Sub("v" + std::to_string(v));
      ASSERT_TRUE(MakeDirs(Env::Default(), root + "/lib", 0755).ok());
      WriteTestFile(root + "/lib/libcomp.so.1", Pseudorandom(40000, 1) + "v" + std::to_string(v));
    }
    // A critical fix, exploited in the wild, rolled out to everyone.
    publish::BuildSpec s;
    s.component = "comp";
    s.platform = "linux-x86_64";
    s.base = "1.0";
    s.label = "a";
    s.base_tree = dir_.Sub("v0");
    s.new_tree = dir_.Sub("v1");
    s.cves = {"CVE-2026-20001"};
    s.urgency = "critical";
    s.exploited = true;
    s.out_dir = dir_.Sub("imp-a");
    ASSERT_TRUE(publish::BuildImprovement(Env::Default(), paths_, s).ok());
    ASSERT_TRUE(
        publish::PublishImprovement(Env::Default(), Clock::Real(), paths_, s.out_dir, 100).ok());
    // The server holds the online keys only.
    const std::string keys = dir_.Sub("server-keys");
    ASSERT_TRUE(MakeDirs(Env::Default(), keys, 0700).ok());
    for (const char* role : {"rollout", "snapshot", "timestamp"}) {
      std::string name = std::string("/") + role + ".key";
      WriteTestFile(keys + name, ReadTestFile(paths_.keys_dir + name));
      ::chmod((keys + name).c_str(), 0600);
    }
    admin_ = "Authorization: Bearer " + std::string(32, 'a');
    viewer_ = "Authorization: Bearer " + std::string(32, 'v');
    WriteTestFile(dir_.Sub("admin.token"), std::string(32, 'a'));
    WriteTestFile(dir_.Sub("viewer.token"), std::string(32, 'v'));
    ::chmod(dir_.Sub("admin.token").c_str(), 0600);
    ::chmod(dir_.Sub("viewer.token").c_str(), 0600);
  }

  void StartServer(int watch_per_address = 256) {
    const std::string toml = dir_.Sub("server.toml");
    WriteTestFile(toml, "listen = \"127.0.0.1:0\"\nrepo_dir = \"" + paths_.repo_dir +
                            "\"\nkeys_dir = \"" + dir_.Sub("server-keys") +
                            "\"\nadmin_token_file = \"" + dir_.Sub("admin.token") +
                            "\"\nviewer_token_file = \"" + dir_.Sub("viewer.token") +
                            "\"\ndatabase = \"sqlite:" + dir_.Sub("reports.db") +
                            "\"\naudit_log = \"" + dir_.Sub("audit.log") +
                            "\"\nwatch_per_address = " + std::to_string(watch_per_address) + "\n");
    server_ =
        std::make_unique<BackgroundProcess>(std::vector<std::string>{QP_SERVER, "--config", toml});
    std::string banner = server_->WaitForOutput("listening on", 20000);
    std::size_t at = banner.find("listening on ");
    ASSERT_NE(at, std::string::npos) << "quietpatch-server did not start:\n" << server_->Output();
    std::size_t colon = banner.find(':', at + 13);
    port_ = std::stoi(banner.substr(colon + 1));
  }

  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_); }

  std::uint64_t PublishedTimestampVersion() {
    Reply r = Http(port_, "GET", "/repo/metadata/timestamp.json");
    Json j = Json::parse(r.body, nullptr, false);
    return j.is_discarded() ? 0 : j["signed"]["version"].get<std::uint64_t>();
  }

  Json ImprovementView() {
    Reply r = Http(port_, "GET", "/v1/fleet/improvements", "", {viewer_});
    Json j = Json::parse(r.body, nullptr, false);
    if (j.is_discarded()) return Json();
    for (const auto& imp : j["improvements"]) {
      if (imp["id"] == kImprovement) return imp;
    }
    return Json();
  }

  // A device's configuration directory for quietpatchd: the fix's component at v0.
  std::string MakeDevice(const std::string& name, const std::string& extra = "") {
    const std::string config = dir_.Sub(name + "/etc"), live = dir_.Sub(name + "/opt/comp");
    EXPECT_TRUE(MakeDirs(Env::Default(), config + "/components", 0755).ok());
    EXPECT_TRUE(MakeDirs(Env::Default(), live + "/lib", 0755).ok());
    WriteTestFile(live + "/lib/libcomp.so.1", ReadTestFile(dir_.Sub("v0/lib/libcomp.so.1")));
    WriteTestFile(config + "/agent.toml",
                  "repository_url = \"" + Url() + "/repo\"\ninterval_seconds = 3600\n" + extra);
    WriteTestFile(config + "/root.json", ReadTestFile(paths_.repo_dir + "/metadata/1.root.json"));
    WriteTestFile(config + "/components/comp.toml",
                  "name = \"comp\"\nplatform = \"linux-x86_64\"\nroot = \"" + live +
                      "\"\n[base_version]\nliteral = \"1.0\"\n[health_check]\ncommand = "
                      "[\"true\"]\n");
    return config;
  }
  std::string LiveLibrary(const std::string& name) {
    return ReadTestFile(dir_.Sub(name + "/opt/comp/lib/libcomp.so.1"));
  }

  TestDir dir_;
  publish::RepoPaths paths_;
  std::string admin_, viewer_;
  std::unique_ptr<BackgroundProcess> server_;
  int port_ = 0;
};

// Adversary: an anonymous internet client, then one that captured a device's request.
// Before device identity, 20 forged reports halted a critical fix at 100%.
TEST_F(HostileClientTest, ForgedAndReplayedReportsCannotHaltAnExploitedFixNorCount) {
  StartServer();
  Reply token = Http(port_, "POST", "/v1/admin/enrollments", R"({"uses": 1, "days": 1})", {admin_});
  ASSERT_EQ(token.status, 200) << token.body;
  TestDevice honest;
  std::string enroll = honest.EnrollBody(Json::parse(token.body)["token"]);
  ASSERT_EQ(
      Http(port_, "POST", "/v1/enroll", enroll, honest.Sign("POST", "/v1/enroll", enroll)).status,
      200);

  int refused = 0;
  for (int i = 0; i < 40; ++i) {
    // Made-up install ids, unsigned.
    std::string id = Pseudorandom(16, static_cast<std::uint64_t>(i) + 1);
    std::string hex;
    for (unsigned char c : id) hex += "0123456789abcdef"[c % 16];
    std::string body = server::ReportBody(hex + hex, 1, "failed", "a", "forged");
    refused += Http(port_, "POST", "/v1/reports", body).status == 401;
    // Keys the fleet never enrolled, signing correctly.
    TestDevice stranger;
    body = server::ReportBody(stranger.id(), 1, "failed", "a", "forged");
    refused += Http(port_, "POST", "/v1/reports", body, stranger.Sign("POST", "/v1/reports", body))
                   .status == 401;
  }
  EXPECT_EQ(refused, 80);
  // The honest device's own failure report, captured and replayed, and its signature put
  // on other bodies.
  std::string body = server::ReportBody(honest.id(), 1, "failed", "a", "health check failed");
  auto headers = honest.Sign("POST", "/v1/reports", body);
  ASSERT_EQ(Http(port_, "POST", "/v1/reports", body, headers).status, 200);
  for (int seq = 2; seq < 40; ++seq) {
    EXPECT_EQ(Http(port_, "POST", "/v1/reports", body, headers).status, 401);
    EXPECT_EQ(Http(port_, "POST", "/v1/reports",
                   server::ReportBody(honest.id(), seq, "failed", "a", "replayed"), headers)
                  .status,
              401);
  }
  // The fix is still rolled out to everyone; the fleet counts one failed device, the honest one.
  Json view = ImprovementView();
  ASSERT_FALSE(view.is_null());
  EXPECT_EQ(view["rollout"]["halted"], false);
  EXPECT_EQ(view["rollout"]["percent"], 100);
  EXPECT_EQ(view["devices"]["failed"], 1);
  ASSERT_EQ(view["failure_reasons"].size(), 1u);
  EXPECT_EQ(view["failure_reasons"][0]["error"], "health check failed");
  // And the views themselves are closed to anonymous clients.
  EXPECT_EQ(Http(port_, "GET", "/v1/fleet/improvements").status, 401);
}

// Adversary: a client opening watches by the hundred and dropping them. Before, 500
// dropped watches held 502 slots for a whole run and 1,100 requests pinned 1024 fds.
TEST_F(HostileClientTest, AWatchFloodGetsOnlyItsAddressShareAndDroppedWatchesFreeTheirSockets) {
  constexpr int kShare = 50, kFlood = 500;
  StartServer(kShare);
  EXPECT_NE(server_->Output().find("capacity: "), std::string::npos) << "logs its capacity";
  // A few requests first, so that every I/O thread's event loop has made its descriptors.
  for (int i = 0; i < 8; ++i)
    ASSERT_EQ(Http(port_, "GET", "/repo/metadata/timestamp.json").status, 200);
  const std::size_t idle = OpenDescriptors(server_->pid());
  const std::string watch =
      "GET /v1/watch?timestamp=" + std::to_string(PublishedTimestampVersion()) +
      "&timeout=120 HTTP/1.1\r\nHost: t\r\n\r\n";
  std::vector<pollfd> fds;
  for (int i = 0; i < kFlood; ++i) {
    int fd = server::Connect(port_);
    ASSERT_GE(fd, 0);
    ASSERT_GT(::send(fd, watch.data(), watch.size(), MSG_NOSIGNAL), 0);
    fds.push_back({fd, POLLIN, 0});
  }
  // Everything past the share is answered 429 at once; the share waits.
  int answered = 0, too_many = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  std::vector<bool> done(fds.size(), false);
  while (answered < kFlood - kShare && std::chrono::steady_clock::now() < deadline) {
    if (::poll(fds.data(), fds.size(), 100) <= 0) continue;
    for (std::size_t i = 0; i < fds.size(); ++i) {
      if (done[i] || !(fds[i].revents & POLLIN)) continue;
      char buf[512];
      ssize_t n = ::recv(fds[i].fd, buf, sizeof(buf), 0);
      done[i] = true;
      ++answered;
      if (n > 12 && std::string(buf, 12) == "HTTP/1.1 429") ++too_many;
      ::close(fds[i].fd);  // the refused client goes away
      fds[i].fd = -1;
    }
  }
  EXPECT_EQ(answered, kFlood - kShare);
  EXPECT_EQ(too_many, kFlood - kShare);
  // Meanwhile honest requests are served.
  EXPECT_EQ(Http(port_, "GET", "/repo/metadata/timestamp.json").status, 200);
  EXPECT_TRUE(Eventually([&] { return OpenDescriptors(server_->pid()) <= idle + kShare + 2; }))
      << OpenDescriptors(server_->pid()) << " descriptors open (" << idle << " idle)";
  // The share's clients hang up: the server lets go of their sockets at once, not at the
  // watch timeout (120 s).
  for (auto& p : fds) {
    if (p.fd >= 0) ::close(p.fd);
  }
  EXPECT_TRUE(Eventually([&] { return OpenDescriptors(server_->pid()) <= idle + 1; }))
      << OpenDescriptors(server_->pid()) << " descriptors open (" << idle << " idle)";
}

// Adversary: clients that request a large patch and never read it. Before, 100 stalled
// readers of a 20 MiB target took the server to 2 GiB.
TEST_F(HostileClientTest, StalledReadersOfALargePatchCostTheServerLittleMemory) {
  const std::string big = Pseudorandom(24 << 20, 99);
  const std::string path = "/repo/targets/" + std::string(64, 'b') + ".large.qpatch";
  WriteTestFile(paths_.repo_dir + path.substr(5), big);
  StartServer();
  ASSERT_EQ(Http(port_, "GET", "/repo/metadata/timestamp.json").status, 200);
  const long before = ResidentKiB(server_->pid());
  std::vector<int> stalled;
  const std::string get = "GET " + path + " HTTP/1.1\r\nHost: t\r\n\r\n";
  for (int i = 0; i < 100; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int small = 4096;
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    ::close(fd);
    fd = server::Connect(port_);
    ASSERT_GE(fd, 0);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    ASSERT_GT(::send(fd, get.data(), get.size(), MSG_NOSIGNAL), 0);
    stalled.push_back(fd);
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));  // the server fills what it can
  const long during = ResidentKiB(server_->pid());
  EXPECT_LT(during - before, 64 * 1024) << "KiB grown with 100 stalled readers of a 24 MiB file ("
                                        << before << " -> " << during << ")";
  // An honest client still gets the whole file, intact.
  Reply whole = Http(port_, "GET", path);
  EXPECT_EQ(whole.status, 200);
  EXPECT_TRUE(whole.body == big) << whole.body.size() << " bytes";
  for (int fd : stalled) ::close(fd);
}

// Adversary: the holder of the online timestamp key (or anyone, over plain HTTP, before
// the signature is checked), declaring a 1 TiB snapshot and serving 64 MiB of it. Before,
// a device buffered 600 MiB of it.
TEST_F(HostileClientTest, AHugeSignedLengthNeverMakesTheDeviceBufferMoreThanItsCap) {
  StartServer();
  const std::string honest_config = MakeDevice("honest");
  Measured honest = RunMeasured({QP_QUIETPATCHD, "--config-dir", honest_config, "--state-dir",
                                 dir_.Sub("honest/state"), "--once"},
                                dir_.Sub("honest.log"));
  ASSERT_EQ(honest.exit_code, 0) << honest.output;
  ASSERT_EQ(LiveLibrary("honest"), ReadTestFile(dir_.Sub("v1/lib/libcomp.so.1")));
  const std::string trusted = ReadTestFile(dir_.Sub("honest/state/metadata/snapshot.json"));

  // The forgery: a timestamp signed with the real online key, declaring a snapshot of
  // 2^40 bytes, and 64 MiB of junk where that snapshot would be.
  auto w = online::LoadRepository(Env::Default(), paths_, Clock::Real()->Now());
  ASSERT_TRUE(w.ok()) << w.error().ToString();
  ASSERT_TRUE(online::LoadSigners(Env::Default(), paths_, "timestamp", &*w).ok());
  w->timestamp().version += 1;
  w->timestamp().snapshot_meta.version += 1;
  w->timestamp().snapshot_meta.length = std::uint64_t{1} << 40;
  w->timestamp().snapshot_meta.hashes.clear();
  auto forged = w->Sign("timestamp");
  ASSERT_TRUE(forged.ok());
  {
    // Written a MiB at a time: the test itself must not hold (or, under ASan, keep in
    // quarantine) what a forked child would be charged for.
    std::ofstream junk(paths_.repo_dir + "/metadata/" +
                       std::to_string(w->timestamp().snapshot_meta.version) + ".snapshot.json");
    const std::string mib(1 << 20, ' ');
    for (int i = 0; i < 64; ++i) junk << mib;
    ASSERT_TRUE(junk.good());
  }
  ASSERT_TRUE(
      WriteFileDurably(Env::Default(), paths_.repo_dir + "/metadata/timestamp.json", *forged).ok());

  for (const char* name : {"fresh", "honest"}) {
    std::string config = std::string(name) == "fresh" ? MakeDevice(name) : honest_config;
    Measured attacked = RunMeasured({QP_QUIETPATCHD, "--config-dir", config, "--state-dir",
                                     dir_.Sub(std::string(name) + "/state"), "--once"},
                                    dir_.Sub(std::string(name) + "-attacked.log"));
    EXPECT_NE(attacked.exit_code, 0) << name << ": " << attacked.output;
    EXPECT_NE(attacked.output.find("1099511627776 bytes, more than the 2000000"), std::string::npos)
        << name << ": " << attacked.output;
    EXPECT_LT(attacked.max_rss_kib, honest.max_rss_kib + 16 * 1024)
        << name << ": peak KiB, against " << honest.max_rss_kib << " for an honest check";
  }
  // Nothing lost: the device that had the fix keeps it and the snapshot it trusted (the
  // validly signed timestamp itself is kept, as TUF 5.4.5 says: a stolen online key can
  // freeze a fleet, not feed it); the fresh one is as it was.
  EXPECT_EQ(LiveLibrary("honest"), ReadTestFile(dir_.Sub("v1/lib/libcomp.so.1")));
  EXPECT_EQ(ReadTestFile(dir_.Sub("honest/state/metadata/snapshot.json")), trusted);
  EXPECT_EQ(LiveLibrary("fresh"), ReadTestFile(dir_.Sub("v0/lib/libcomp.so.1")));
}

// Adversary: a local user dripping bytes into the root daemon's control socket. Before,
// a byte every 4 s held it, one connection at a time; root's command waited 39 s.
TEST_F(HostileClientTest, DrippingControlClientsCannotHoldTheDaemonsSocket) {
  StartServer();
  const std::string socket = dir_.Sub("dev/control.sock");
  const std::string config = MakeDevice("dev", "control_socket = \"" + socket + "\"\n");
  BackgroundProcess daemon(
      {QP_QUIETPATCHD, "--config-dir", config, "--state-dir", dir_.Sub("dev/state")});
  auto status = [&] {
    return RunCommand({"timeout", "20", QP_QUIETPATCH, "--socket", socket, "--json", "status"});
  };
  ASSERT_TRUE(Eventually([&] { return status().exit_code == 0; }, std::chrono::seconds(20)))
      << daemon.Output();

  // Three connections send a byte every 200 ms, never finishing a request.
  constexpr int kDrippers = 3;
  std::vector<int> drippers;
  for (int i = 0; i < kDrippers; ++i) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", socket.c_str());
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    drippers.push_back(fd);
  }
  std::atomic<int> cut{0};
  std::thread drip([&] {
    std::vector<bool> open(drippers.size(), true);
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (cut < kDrippers && std::chrono::steady_clock::now() < end) {
      for (std::size_t i = 0; i < drippers.size(); ++i) {
        if (open[i] && ::send(drippers[i], " ", 1, MSG_NOSIGNAL) != 1) {
          open[i] = false;  // the daemon hung up on it
          ++cut;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  });
  // Root's command is answered meanwhile.
  CommandResult answered = status();
  EXPECT_EQ(answered.exit_code, 0) << answered.output;
  EXPECT_FALSE(Json::parse(answered.output, nullptr, false).is_discarded()) << answered.output;
  drip.join();
  EXPECT_EQ(cut, kDrippers) << "the whole-request deadline cuts a client that keeps dripping";
  for (int fd : drippers) ::close(fd);
  EXPECT_EQ(status().exit_code, 0);
}

}  // namespace
}  // namespace qp
