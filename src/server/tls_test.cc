// HTTPS: given a certificate and key the server speaks TLS, and the agent's fetcher (with
// the certificate as its CA) downloads and verifies over it.
#include <gtest/gtest.h>

#include "core/durable_file.h"
#include "core/test_dir.h"
#include "core/test_process.h"
#include "net/http_fetcher.h"
#include "publish/publisher.h"
#include "server/server.h"

namespace qp::server {
namespace {

TEST(TlsTest, ServesTheRepositoryOverHttps) {
  TestDir dir;
  auto cert =
      RunCommand({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-nodes", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                  "-days", "1", "-keyout", dir.Sub("key.pem"), "-out", dir.Sub("cert.pem")});
  ASSERT_EQ(cert.exit_code, 0) << cert.output;
  publish::RepoPaths paths{dir.Sub("repo"), dir.Sub("keys")};
  ASSERT_TRUE(publish::InitRepository(Env::Default(), Clock::Real(), paths, {}).ok());
  ServerConfig config;
  config.listen_port = 0;
  config.repo_dir = paths.repo_dir;
  config.database = "sqlite:" + dir.Sub("reports.db");
  config.tls_cert = dir.Sub("cert.pem");
  config.tls_key = dir.Sub("key.pem");
  auto server = Server::Open(config, Env::Default(), Clock::Real());
  ASSERT_TRUE(server.ok()) << server.error().ToString();
  ASSERT_TRUE((*server)->Start().ok());
  std::string base =
      "127.0.0.1:" + std::to_string((*server)->port()) + "/repo/metadata/timestamp.json";

  net::HttpOptions trusting;
  trusting.ca_file = dir.Sub("cert.pem");
  net::HttpFetcher https(trusting);
  auto got = https.Fetch("https://" + base, 16384);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(std::string(got->begin(), got->end()),
            ReadTestFile(paths.repo_dir + "/metadata/timestamp.json"));
  // Without the CA the peer is not trusted; plain HTTP gets no answer.
  net::HttpFetcher strict;
  EXPECT_FALSE(strict.Fetch("https://" + base, 16384).ok());
  EXPECT_FALSE(strict.Fetch("http://" + base, 16384).ok());
  (*server)->Stop();
}

TEST(TlsTest, RefusesAHalfConfiguration) {
  ServerConfig config;
  config.listen_port = 0;
  config.tls_cert = "/nonexistent/cert.pem";
  config.database = "sqlite::memory:";
  config.repo_dir = "/nonexistent";
  auto server = Server::Open(config, Env::Default(), Clock::Real());
  ASSERT_TRUE(server.ok()) << server.error().ToString();
  auto s = (*server)->Start();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message().find("both a certificate and a key"), std::string::npos);
}

}  // namespace
}  // namespace qp::server
