// End to end: quietpatch-tuf-client against a repository written by the project's
// RepositoryWriter and served over HTTP on loopback by python3's http.server.
#include <gtest/gtest.h>

#include "core/clock.h"
#include "core/durable_file.h"
#include "core/env.h"
#include "core/test_dir.h"
#include "core/test_process.h"
#include "tuf/repository.h"

namespace qp {
namespace {

std::vector<std::uint8_t> Bytes(std::string_view s) { return {s.begin(), s.end()}; }

class TufClientE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto key = crypto::SigningKey::Generate(crypto::Scheme::kEd25519);
    ASSERT_TRUE(key.ok());
    key_ = std::make_shared<const crypto::SigningKey>(std::move(key).value());
    for (const char* role : {"root", "timestamp", "snapshot", "targets"}) {
      writer_.AddRootRoleKey(role, key_->Public());
      writer_.AddSigner(role, key_);
    }
    tuf::DelegatedRole improvements;
    improvements.name = "improvements";
    improvements.paths = std::vector<std::string>{"improvements/*"};
    writer_.AddDelegation("targets", improvements);
    writer_.AddDelegatedKey("targets", "improvements", key_->Public());
    writer_.AddSigner("improvements", key_);
    writer_.AddTarget("targets", "hello.txt", Bytes("hello, world\n"));
    writer_.AddTarget("improvements", "improvements/fix.qpatch", Bytes("QPATCH bytes"));
    ASSERT_TRUE(writer_.PublishRoot().ok());
    ASSERT_TRUE(writer_.PublishAll().ok());
    WriteRepo();
    WriteTestFile(repo_.Sub("initial_root.json"), Served("1.root.json"));

    server_ = std::make_unique<BackgroundProcess>(
        std::vector<std::string>{"python3", "-u", "-m", "http.server", "0", "--bind", "127.0.0.1",
                                 "--directory", repo_.Sub("www")});
    std::string banner = server_->WaitForOutput("port ", 10000);
    std::size_t at = banner.find("port ");
    ASSERT_NE(at, std::string::npos) << "http.server did not start";
    std::string port =
        banner.substr(at + 5, banner.find_first_not_of("0123456789", at + 5) - at - 5);
    ASSERT_FALSE(port.empty()) << banner;
    base_ = "http://127.0.0.1:" + port + "/";
  }

  void WriteRepo() {
    for (const auto& [name, bytes] : writer_.files()) {
      std::string path = repo_.Sub("www/" + name);
      ASSERT_TRUE(MakeDirs(Env::Default(), DirName(path)).ok());
      WriteTestFile(path, std::string(bytes.begin(), bytes.end()));
    }
  }

  std::string Served(const std::string& name) {
    const auto& b = writer_.files().at("metadata/" + name);
    return {b.begin(), b.end()};
  }

  CommandResult Client(std::vector<std::string> args, std::vector<std::string> prefix = {}) {
    std::vector<std::string> argv = prefix;
    argv.push_back(QP_TUF_CLIENT);
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<std::string> env;
    // Under ASan, an LD_PRELOAD wrapper (faketime) must not trip the link-order check.
    if (!prefix.empty()) env.push_back("ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=0");
    return RunCommand(argv, env);
  }

  CommandResult Download(const std::vector<std::string>& names) {
    std::vector<std::string> args = {"--metadata-url", base_ + "metadata/", "--metadata-dir",
                                     client_.Sub("md")};
    for (const auto& n : names) {
      args.push_back("--target-name");
      args.push_back(n);
    }
    args.insert(args.end(), {"--target-base-url", base_ + "targets/", "--target-dir",
                             client_.Sub("targets"), "download"});
    return Client(args);
  }

  int Requests(const std::string& path_part) {
    std::string log = server_->Output();
    int n = 0;
    for (std::size_t p = log.find("GET /"); p != std::string::npos; p = log.find("GET /", p + 1)) {
      std::size_t end = log.find(' ', p + 4);
      if (log.substr(p + 4, end - p - 4).find(path_part) != std::string::npos) ++n;
    }
    return n;
  }

  TestDir repo_;
  TestDir client_;
  std::shared_ptr<const crypto::SigningKey> key_;
  tuf::RepositoryWriter writer_{Clock::Real()->Now()};
  std::unique_ptr<BackgroundProcess> server_;
  std::string base_;
};

TEST_F(TufClientE2eTest, InitRefreshAndDownloadOverHttp) {
  auto init = Client({"--metadata-dir", client_.Sub("md"), "init", repo_.Sub("initial_root.json")});
  ASSERT_EQ(init.exit_code, 0) << init.output;
  EXPECT_EQ(Requests("/"), 0);  // init makes no request

  auto refresh = Client(
      {"--metadata-url", base_ + "metadata", "--metadata-dir", client_.Sub("md"), "refresh"});
  ASSERT_EQ(refresh.exit_code, 0) << refresh.output;
  EXPECT_EQ(ReadTestFile(client_.Sub("md/timestamp.json")), Served("timestamp.json"));
  EXPECT_EQ(ReadTestFile(client_.Sub("md/snapshot.json")), Served("1.snapshot.json"));
  EXPECT_EQ(ReadTestFile(client_.Sub("md/targets.json")), Served("1.targets.json"));

  auto dl = Download({"hello.txt", "improvements/fix.qpatch"});
  ASSERT_EQ(dl.exit_code, 0) << dl.output;
  EXPECT_EQ(ReadTestFile(client_.Sub("targets/hello.txt")), "hello, world\n");
  EXPECT_EQ(ReadTestFile(client_.Sub("targets/improvements%2Ffix.qpatch")), "QPATCH bytes");
  EXPECT_EQ(ReadTestFile(client_.Sub("md/improvements.json")), Served("1.improvements.json"));
  EXPECT_EQ(Requests("hello.txt"), 1);

  // Already downloaded with matching hashes: not fetched again.
  dl = Download({"hello.txt"});
  ASSERT_EQ(dl.exit_code, 0) << dl.output;
  EXPECT_EQ(Requests("hello.txt"), 1);
}

TEST_F(TufClientE2eTest, RefusesTamperedTargetsAndUnknownNamesWithExitStatusOne) {
  ASSERT_EQ(Client({"--metadata-dir", client_.Sub("md"), "init", repo_.Sub("initial_root.json")})
                .exit_code,
            0);
  // Tamper with the served target.
  for (const auto& [name, bytes] : writer_.files()) {
    if (name.find("hello.txt") != std::string::npos) {
      WriteTestFile(repo_.Sub("www/" + name), "hellO, world\n");
    }
  }
  auto dl = Download({"hello.txt"});
  EXPECT_EQ(dl.exit_code, 1) << dl.output;
  EXPECT_FALSE(TestPathExists(client_.Sub("targets/hello.txt")));
  EXPECT_EQ(Download({"no/such/target"}).exit_code, 1);
  EXPECT_EQ(Client({"--metadata-dir", client_.Sub("md")}).exit_code, 1);  // no subcommand
  EXPECT_EQ(Client({"--bogus", "refresh"}).exit_code, 1);
  // Nothing but verified metadata, and no temporary files, in the metadata directory.
  auto names = Env::Default()->ListDir(client_.Sub("md"));
  ASSERT_TRUE(names.ok());
  for (const auto& n : *names) {
    EXPECT_TRUE(n == "root.json" || n == "timestamp.json" || n == "snapshot.json" ||
                n == "targets.json")
        << n;
  }
}

TEST_F(TufClientE2eTest, FaketimeMovesTheClockPastExpiry) {
  if (RunCommand({"sh", "-c", "command -v faketime"}).exit_code != 0) {
    GTEST_FAIL() << "faketime is not installed (scripts/setup.sh installs it)";
  }
  ASSERT_EQ(Client({"--metadata-dir", client_.Sub("md"), "init", repo_.Sub("initial_root.json")})
                .exit_code,
            0);
  // The timestamp expires after one day.
  auto late = Client(
      {"--metadata-url", base_ + "metadata/", "--metadata-dir", client_.Sub("md"), "refresh"},
      {"faketime", "-f", "+2d"});
  EXPECT_EQ(late.exit_code, 1) << late.output;
  EXPECT_NE(late.output.find("expired"), std::string::npos) << late.output;
  auto now = Client(
      {"--metadata-url", base_ + "metadata/", "--metadata-dir", client_.Sub("md"), "refresh"});
  EXPECT_EQ(now.exit_code, 0) << now.output;
}

}  // namespace
}  // namespace qp
