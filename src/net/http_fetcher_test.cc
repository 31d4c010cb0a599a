// The device's HTTP client against scripted servers and proxies: what it sends, what it
// keeps, and how each hostile or broken answer ends (capped, timed out, cancelled, refused).
#include "net/http_fetcher.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <thread>

#include "core/test_dir.h"
#include "core/test_process.h"
#include "net/test_http_peer.h"

namespace qp::net {
namespace {

std::string UrlOf(const TestHttpPeer& peer, const std::string& path, const char* host = "127.0.0.1",
                  bool https = false) {
  return std::string(https ? "https://" : "http://") + host + ":" + std::to_string(peer.port()) +
         path;
}

std::string AsText(const std::vector<std::uint8_t>& bytes) {
  return std::string(bytes.begin(), bytes.end());
}

HttpOptions Direct() {
  HttpOptions options;
  options.proxies = ProxySettings{};
  return options;
}

// Waits, without answering, until the peer goes away.
void Stall(const TestHttpPeer& peer) {
  while (!peer.stopping()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

TEST(HttpFetcherTest, FetchesOverOneKeptConnectionAndKeepsTheEtag) {
  std::vector<std::string> requests;
  TestHttpPeer peer([&](PeerConnection& c) {
    for (std::string r; !(r = c.ReadRequest()).empty();) {
      requests.push_back(r);
      c.Write(Answer(200, "metadata", "ETag: \"v7\"\r\n"));
    }
  });
  HttpFetcher fetcher(Direct());
  for (int i = 0; i < 3; ++i) {
    auto got = fetcher.Fetch(UrlOf(peer, "/m/timestamp.json"), 100);
    ASSERT_TRUE(got.ok()) << got.error().ToString();
    EXPECT_EQ(AsText(*got), "metadata");
  }
  EXPECT_EQ(fetcher.last_fetch_etag(), "\"v7\"");
  EXPECT_EQ(fetcher.request_count(), 3u);
  EXPECT_EQ(peer.connections(), 1);
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_TRUE(requests[0].starts_with("GET /m/timestamp.json HTTP/1.1\r\n")) << requests[0];
  EXPECT_NE(requests[0].find("Host: 127.0.0.1:"), std::string::npos);
  EXPECT_NE(requests[0].find("User-Agent: quietpatch/"), std::string::npos);
}

TEST(HttpFetcherTest, SendsTheRequestAgainWhenTheServerClosedTheKeptConnection) {
  TestHttpPeer peer([](PeerConnection& c) {
    if (!c.ReadRequest().empty()) c.Write(Answer(200, "one"));
    // ... and closes, without saying "Connection: close".
  });
  HttpFetcher fetcher(Direct());
  ASSERT_TRUE(fetcher.Fetch(UrlOf(peer, "/a"), 100).ok());
  auto again = fetcher.Fetch(UrlOf(peer, "/b"), 100);
  ASSERT_TRUE(again.ok()) << again.error().ToString();
  EXPECT_EQ(AsText(*again), "one");
  EXPECT_EQ(peer.connections(), 2);
}

TEST(HttpFetcherTest, EndlessDataStopsAtTheCap) {
  TestHttpPeer peer([](PeerConnection& c) {
    c.ReadRequest();
    c.Write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    std::string chunk = "4000\r\n" + std::string(0x4000, 'x') + "\r\n";
    while (c.Write(chunk)) {
    }
  });
  HttpFetcher fetcher(Direct());
  auto got = fetcher.Fetch(UrlOf(peer, "/endless"), 100000);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), ErrorCode::kTooLarge) << got.error().ToString();
}

TEST(HttpFetcherTest, AStalledTransferIsAbandoned) {
  TestHttpPeer peer([&peer](PeerConnection& c) {
    c.ReadRequest();
    c.Write("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nsome");
    Stall(peer);
  });
  HttpOptions options = Direct();
  options.low_speed_seconds = 1;
  HttpFetcher fetcher(options);
  auto got = fetcher.Fetch(UrlOf(peer, "/slow"), 100000);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.error().code(), ErrorCode::kIo);
  EXPECT_NE(got.error().message().find("too slow"), std::string::npos) << got.error().ToString();
}

TEST(HttpFetcherTest, AnAnswerThatNeverComesEndsAMetadataFetchButNotALongPoll) {
  TestHttpPeer peer([&peer](PeerConnection& c) {
    c.ReadRequest();
    Stall(peer);
  });
  HttpOptions options = Direct();
  options.low_speed_seconds = 1;
  HttpFetcher fetcher(options);
  auto fetched = fetcher.Fetch(UrlOf(peer, "/silent"), 100);
  ASSERT_FALSE(fetched.ok());
  EXPECT_NE(fetched.error().message().find("too slow"), std::string::npos);
  // A watch is held by the server: only its own timeout ends it.
  auto watched = fetcher.Get(UrlOf(peer, "/v1/watch"), 2);
  ASSERT_FALSE(watched.ok());
  EXPECT_NE(watched.error().message().find("timed out"), std::string::npos)
      << watched.error().ToString();
}

TEST(HttpFetcherTest, ACancelledWatchEndsAtOnce) {
  TestHttpPeer peer([&peer](PeerConnection& c) {
    c.ReadRequest();
    Stall(peer);
  });
  std::atomic<bool> cancel{false};
  std::thread canceller([&cancel] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    cancel = true;
  });
  HttpFetcher fetcher(Direct());
  auto watched = fetcher.Get(UrlOf(peer, "/v1/watch"), 3600, 4096, &cancel);
  canceller.join();
  ASSERT_FALSE(watched.ok());
  EXPECT_NE(watched.error().message().find("cancelled"), std::string::npos)
      << watched.error().ToString();
}

TEST(HttpFetcherTest, AWatchTheServerHoldsSaysOnceThatItWaitsAndOneAnsweredAtOnceDoesNot) {
  TestHttpPeer peer([](PeerConnection& c) {
    for (std::string r; !(r = c.ReadRequest()).empty();) {
      if (r.starts_with("GET /v1/watch?held")) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2500));
        c.Write(Answer(204, ""));
      } else {
        c.Write(Answer(200, "news"));
      }
    }
  });
  HttpFetcher fetcher(Direct());
  int waits = 0;
  auto held = fetcher.Get(UrlOf(peer, "/v1/watch?held"), 60, 4096, nullptr, {}, [&] { ++waits; });
  ASSERT_TRUE(held.ok()) << held.error().ToString();
  EXPECT_EQ(held->status, 204);
  EXPECT_EQ(waits, 1) << "once, however long the server holds it";
  auto news = fetcher.Get(UrlOf(peer, "/v1/watch?now"), 60, 4096, nullptr, {}, [&] { ++waits; });
  ASSERT_TRUE(news.ok()) << news.error().ToString();
  EXPECT_EQ(news->body, "news");
  EXPECT_EQ(waits, 1) << "an answer that came at once";
}

TEST(HttpFetcherTest, StatusesMapToErrorsAndBodiesOfOtherAnswersAreKept) {
  TestHttpPeer peer([](PeerConnection& c) {
    for (std::string r; !(r = c.ReadRequest()).empty();) {
      if (r.starts_with("GET /missing")) c.Write(Answer(404, "nope"));
      if (r.starts_with("GET /broken")) c.Write(Answer(500, "oops"));
      if (r.starts_with("GET /moved")) c.Write(Answer(302, "", "Location: http://evil/\r\n"));
      if (r.starts_with("POST /v1/reports")) {
        bool json = r.find("Content-Type: application/json\r\n") != std::string::npos;
        bool signed_ = r.find("QP-Signature: abc\r\n") != std::string::npos;
        bool body = r.ends_with("{\"a\":1}");
        c.Write(Answer(json && signed_ && body ? 429 : 400, "{\"error\":\"slow down\"}",
                       "Retry-After: 30\r\n"));
      }
    }
  });
  HttpFetcher fetcher(Direct());
  auto missing = fetcher.Fetch(UrlOf(peer, "/missing"), 100);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound);
  auto broken = fetcher.Fetch(UrlOf(peer, "/broken"), 100);
  ASSERT_FALSE(broken.ok());
  EXPECT_EQ(broken.error().code(), ErrorCode::kIo);
  auto moved = fetcher.Fetch(UrlOf(peer, "/moved"), 100);  // redirects are not followed
  ASSERT_FALSE(moved.ok());
  EXPECT_NE(moved.error().message().find("HTTP 302"), std::string::npos);
  auto posted = fetcher.PostJson(UrlOf(peer, "/v1/reports"), "{\"a\":1}", {"QP-Signature: abc"});
  ASSERT_TRUE(posted.ok()) << posted.error().ToString();
  EXPECT_EQ(posted->status, 429);
  EXPECT_EQ(posted->retry_after, "30");
  EXPECT_EQ(posted->body, "{\"error\":\"slow down\"}");
  // A header line cannot smuggle another header.
  auto smuggled = fetcher.PostJson(UrlOf(peer, "/v1/reports"), "{}", {"A: b\r\nEvil: 1"});
  ASSERT_FALSE(smuggled.ok());
  EXPECT_EQ(smuggled.error().code(), ErrorCode::kInvalidArgument);
}

// A file server that honours Range, cutting its first answer halfway.
class RangeServer {
 public:
  explicit RangeServer(std::string content, bool honour_ranges = true)
      : content_(std::move(content)), peer_([this, honour_ranges](PeerConnection& c) {
          for (std::string r; !(r = c.ReadRequest()).empty();) {
            requests_.push_back(r);
            std::size_t from = 0;
            if (std::size_t at = r.find("Range: bytes="); at != std::string::npos) {
              from = std::stoul(r.substr(at + 13));
            }
            if (from > content_.size()) {
              c.Write(Answer(416, ""));
            } else if (from > 0 && honour_ranges) {
              c.Write(Answer(206, content_.substr(from),
                             "Content-Range: bytes " + std::to_string(from) + "-" +
                                 std::to_string(content_.size() - 1) + "/" +
                                 std::to_string(content_.size()) + "\r\n"));
            } else if (++whole_answers_ == 1 && cut_first_) {
              std::string a = Answer(200, content_);
              c.Write(a.substr(0, a.size() - content_.size() / 2));
              return;  // gone mid-body
            } else {
              c.Write(Answer(200, content_));
            }
          }
        }) {}
  std::string Url(const std::string& path) const { return UrlOf(peer_, path); }
  const std::vector<std::string>& requests() const { return requests_; }
  bool cut_first_ = true;

 private:
  std::string content_;
  std::vector<std::string> requests_;
  int whole_answers_ = 0;
  TestHttpPeer peer_;
};

TEST(HttpFetcherTest, ADownloadCutHalfwayResumesWithARange) {
  std::string content(100000, 'p');
  for (std::size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>('a' + i % 26);
  RangeServer server(content);
  TestDir dir;
  HttpFetcher fetcher(Direct());
  std::string partial = dir.Sub("patch.partial");
  auto first = fetcher.DownloadToFile(Env::Default(), server.Url("/p"), partial, 1 << 20);
  ASSERT_FALSE(first.ok());
  EXPECT_NE(first.error().message().find("bytes kept to resume"), std::string::npos)
      << first.error().ToString();
  std::size_t kept = ReadTestFile(partial).size();
  EXPECT_EQ(kept, content.size() - content.size() / 2);
  auto second = fetcher.DownloadToFile(Env::Default(), server.Url("/p"), partial, 1 << 20);
  ASSERT_TRUE(second.ok()) << second.error().ToString();
  EXPECT_EQ(*second, content.size());
  EXPECT_EQ(ReadTestFile(partial), content);
  ASSERT_EQ(server.requests().size(), 2u);
  EXPECT_NE(server.requests()[1].find("Range: bytes=" + std::to_string(kept) + "-"),
            std::string::npos);
}

TEST(HttpFetcherTest, AServerThatIgnoresTheRangeGivesTheWholeFileFromTheStart) {
  std::string content(5000, 'q');
  RangeServer server(content, /*honour_ranges=*/false);
  server.cut_first_ = false;
  TestDir dir;
  std::string partial = dir.Sub("patch.partial");
  WriteTestFile(partial, "stale bytes of another attempt");
  HttpFetcher fetcher(Direct());
  auto got = fetcher.DownloadToFile(Env::Default(), server.Url("/p"), partial, 1 << 20);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(ReadTestFile(partial), content);
}

TEST(HttpFetcherTest, AnUnsatisfiableRangeOrAnOversizedFileDeletesThePartialFile) {
  RangeServer server(std::string(5000, 'r'));
  TestDir dir;
  std::string partial = dir.Sub("patch.partial");
  WriteTestFile(partial, std::string(6000, 'x'));  // more than the server has
  HttpFetcher fetcher(Direct());
  auto got = fetcher.DownloadToFile(Env::Default(), server.Url("/p"), partial, 1 << 20);
  ASSERT_FALSE(got.ok());
  EXPECT_FALSE(TestPathExists(partial));
  server.cut_first_ = false;
  auto too_large = fetcher.DownloadToFile(Env::Default(), server.Url("/p"), partial, 4000);
  ASSERT_FALSE(too_large.ok());
  EXPECT_EQ(too_large.error().code(), ErrorCode::kTooLarge);
  EXPECT_FALSE(TestPathExists(partial));
}

// TLS: a certificate for `names` (subjectAltName), signed by itself, in `dir`.
void MakeCertificate(const TestDir& dir, const std::string& names) {
  auto made =
      RunCommand({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                  "-nodes", "-subj", "/CN=quietpatch test", "-addext", "subjectAltName=" + names,
                  "-days", "1", "-keyout", dir.Sub("key.pem"), "-out", dir.Sub("cert.pem")});
  ASSERT_EQ(made.exit_code, 0) << made.output;
}

TEST(HttpFetcherTest, HttpsSendsSniAndVerifiesTheChainAndTheName) {
  TestDir dir;
  ASSERT_NO_FATAL_FAILURE(MakeCertificate(dir, "DNS:localhost,IP:127.0.0.1"));
  std::string seen_name;
  TestHttpPeer peer(
      [&](PeerConnection& c) {
        seen_name = c.server_name();
        for (std::string r; !(r = c.ReadRequest()).empty();) c.Write(Answer(200, "secure"));
      },
      dir.Sub("cert.pem"), dir.Sub("key.pem"));
  HttpOptions trusting = Direct();
  trusting.ca_file = dir.Sub("cert.pem");
  HttpFetcher fetcher(trusting);
  auto by_name = fetcher.Fetch(UrlOf(peer, "/x", "localhost", true), 100);
  ASSERT_TRUE(by_name.ok()) << by_name.error().ToString();
  EXPECT_EQ(AsText(*by_name), "secure");
  EXPECT_EQ(seen_name, "localhost");
  fetcher.CloseIdleConnection();  // the peer serves one connection at a time
  auto by_address = HttpFetcher(trusting).Fetch(UrlOf(peer, "/x", "127.0.0.1", true), 100);
  ASSERT_TRUE(by_address.ok()) << by_address.error().ToString();
  // The system's CAs do not know this certificate.
  auto untrusted = HttpFetcher(Direct()).Fetch(UrlOf(peer, "/x", "localhost", true), 100);
  ASSERT_FALSE(untrusted.ok());
  EXPECT_NE(untrusted.error().message().find("certificate"), std::string::npos)
      << untrusted.error().ToString();
}

TEST(HttpFetcherTest, HttpsRefusesACertificateForAnotherName) {
  TestDir dir;
  ASSERT_NO_FATAL_FAILURE(MakeCertificate(dir, "DNS:updates.other.example"));
  TestHttpPeer peer([](PeerConnection& c) { c.Write(Answer(200, "impostor")); },
                    dir.Sub("cert.pem"), dir.Sub("key.pem"));
  HttpOptions trusting = Direct();
  trusting.ca_file = dir.Sub("cert.pem");
  for (const char* host : {"localhost", "127.0.0.1"}) {
    auto got = HttpFetcher(trusting).Fetch(UrlOf(peer, "/x", host, true), 100);
    ASSERT_FALSE(got.ok()) << host;
    EXPECT_NE(got.error().message().find("certificate"), std::string::npos)
        << got.error().ToString();
  }
}

// Copies bytes both ways between two sockets until either side closes.
void Relay(int a, int b) {
  pollfd fds[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
  char buf[16384];
  while (poll(fds, 2, 5000) > 0) {
    for (int i = 0; i < 2; ++i) {
      if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
      ssize_t n = read(fds[i].fd, buf, sizeof buf);
      if (n <= 0 || write(fds[1 - i].fd, buf, static_cast<std::size_t>(n)) != n) return;
    }
  }
}

TEST(HttpFetcherTest, HttpsGoesThroughAProxyWithConnect) {
  TestDir dir;
  ASSERT_NO_FATAL_FAILURE(MakeCertificate(dir, "DNS:localhost"));
  TestHttpPeer origin(
      [](PeerConnection& c) {
        for (std::string r; !(r = c.ReadRequest()).empty();) c.Write(Answer(200, "tunnelled"));
      },
      dir.Sub("cert.pem"), dir.Sub("key.pem"));
  std::string connect_request;
  TestHttpPeer proxy([&](PeerConnection& c) {
    connect_request = c.ReadRequest();
    boost::asio::io_context ioc;
    boost::asio::ip::tcp::socket upstream(ioc);
    upstream.connect(
        {boost::asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(origin.port())});
    c.Write("HTTP/1.1 200 Connection established\r\n\r\n");
    Relay(c.fd(), upstream.native_handle());
  });
  HttpOptions options;
  options.ca_file = dir.Sub("cert.pem");
  options.proxies.https_proxy = "http://agent:s3cret@127.0.0.1:" + std::to_string(proxy.port());
  options.proxies.no_proxy = "";
  HttpFetcher fetcher(options);
  auto got = fetcher.Fetch(UrlOf(origin, "/x", "localhost", true), 100);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(AsText(*got), "tunnelled");
  std::string target = "localhost:" + std::to_string(origin.port());
  EXPECT_TRUE(connect_request.starts_with("CONNECT " + target + " HTTP/1.1\r\n"))
      << connect_request;
  // "agent:s3cret" in Base64.
  EXPECT_NE(connect_request.find("Proxy-Authorization: Basic YWdlbnQ6czNjcmV0\r\n"),
            std::string::npos)
      << connect_request;
}

TEST(HttpFetcherTest, PlainHttpGoesThroughAProxyWithTheAbsoluteUrl) {
  std::string seen;
  TestHttpPeer proxy([&](PeerConnection& c) {
    seen = c.ReadRequest();
    c.Write(Answer(200, "proxied"));
  });
  HttpOptions options;
  options.proxies.http_proxy = "127.0.0.1:" + std::to_string(proxy.port());
  HttpFetcher fetcher(options);
  auto got = fetcher.Fetch("http://updates.example.com/repo/x.json", 100);
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(AsText(*got), "proxied");
  EXPECT_TRUE(seen.starts_with("GET http://updates.example.com/repo/x.json HTTP/1.1\r\n")) << seen;
  EXPECT_NE(seen.find("Host: updates.example.com\r\n"), std::string::npos) << seen;
}

TEST(HttpFetcherTest, AProxyThatRefusesTheTunnelIsAClearError) {
  TestHttpPeer proxy([](PeerConnection& c) {
    c.ReadRequest();
    c.Write("HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n");
  });
  HttpOptions options;
  options.proxies.https_proxy = "http://127.0.0.1:" + std::to_string(proxy.port());
  auto got = HttpFetcher(options).Fetch("https://updates.example.com/x", 100);
  ASSERT_FALSE(got.ok());
  EXPECT_NE(got.error().message().find("proxy refused CONNECT"), std::string::npos)
      << got.error().ToString();
  EXPECT_NE(got.error().message().find("407"), std::string::npos);
}

}  // namespace
}  // namespace qp::net
