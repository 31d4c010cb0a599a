// HTTP(S) for the device, over Boost.Beast and Asio with OpenSSL (no other library is
// mapped): the network side of tuf::Fetcher, resumable downloads, signed reports and the
// watch. Every body is capped (reading stops as soon as it passes the cap, so endless data
// costs nothing); connecting, stalled transfers and whole requests time out; redirects are
// not followed; only http and https are spoken; HTTPS sends SNI and verifies the peer's
// chain against the system CA store or a configured CA file and its name against the URL's
// host; https_proxy / http_proxy / no_proxy are honoured (CONNECT for https).
// One HttpFetcher keeps one connection alive between requests; it is not thread-safe (one
// per thread).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/env.h"
#include "net/url.h"
#include "tuf/fetcher.h"

namespace qp::net {

struct HttpOptions {
  std::string ca_file;  // empty: the system CA store
  long connect_timeout_seconds = 15;
  // A transfer slower than low_speed_bytes per second for low_speed_seconds is abandoned
  // (slow retrieval).
  long low_speed_bytes = 64;
  long low_speed_seconds = 30;
  long total_timeout_seconds = 0;  // 0: no overall limit (the low-speed limit applies)
  std::string user_agent = "quietpatch/0.1";
  ProxySettings proxies = ProxySettings::FromEnvironment();
};

class HttpFetcher final : public tuf::Fetcher {
 public:
  explicit HttpFetcher(HttpOptions options = {});
  ~HttpFetcher() override;
  HttpFetcher(const HttpFetcher&) = delete;
  HttpFetcher& operator=(const HttpFetcher&) = delete;

  Result<std::vector<std::uint8_t>> Fetch(const std::string& url,
                                          std::uint64_t max_length) override;

  // Downloads `url` into `partial_path`, resuming with an HTTP Range request from the bytes
  // already there (a partial file survives restarts of the daemon; its content is never
  // trusted: the caller verifies the whole file's hashes afterwards). A server that answers
  // a range with the whole file gets it written from the start. Stops with kTooLarge (the
  // partial file deleted) past `max_length`. Returns the file's size when the server has
  // sent everything; kIo otherwise, with the bytes kept to resume. The file is written
  // through `env`, and synced before this returns.
  Result<std::uint64_t> DownloadToFile(Env* env, const std::string& url,
                                       const std::string& partial_path, std::uint64_t max_length);

  struct Response {
    long status = 0;
    std::string body;
    std::string retry_after;  // Retry-After header, if any
    std::string etag;         // ETag header, if any
  };
  // POSTs `body` (JSON) with extra header lines ("Name: value") and returns the status and
  // body, whatever the status. kTooLarge past `max_response` bytes; kIo when no whole HTTP
  // answer arrived.
  Result<Response> PostJson(const std::string& url, const std::string& body,
                            const std::vector<std::string>& headers = {},
                            std::size_t max_response = 1 << 20);
  // GET for small answers (the watch, a conditional probe), with a per-request timeout in
  // seconds and extra header lines. The server may hold the answer until the timeout (a
  // long poll): only its body must keep flowing. When `cancel` becomes true the request is
  // abandoned (kIo "cancelled") within a second. `waiting`, if set, is called once if the
  // server holds the answer (see TransferLimits::waiting).
  Result<Response> Get(const std::string& url, long timeout_seconds,
                       std::size_t max_response = 1 << 20,
                       const std::atomic<bool>* cancel = nullptr,
                       const std::vector<std::string>& headers = {},
                       std::function<void()> waiting = nullptr);

  // Requests made so far (for tests and benchmarks).
  std::uint64_t request_count() const { return request_count_; }
  // The ETag of the last successful Fetch() ("" when it had none).
  const std::string& last_fetch_etag() const { return last_fetch_etag_; }
  // Closes the kept connection and frees its buffers (an idle device holds none).
  void CloseIdleConnection();

 private:
  struct Impl;
  struct Call;
  // Sends one request on the kept connection (or a new one; once more on a new one when the
  // server had closed the kept one while idle), reads the answer's header, lets `call`
  // decide from it, then streams the body to the call's sink. Errors name the URL.
  Result<long> Perform(const std::string& url, Call& call);
  Result<Response> Ask(const std::string& url, std::optional<std::string> post_body,
                       const std::vector<std::string>& extra_headers, long timeout_seconds,
                       std::size_t max_response, const std::atomic<bool>* cancel,
                       std::function<void()> waiting = nullptr);
  std::unique_ptr<Impl> impl_;
  HttpOptions options_;
  std::uint64_t request_count_ = 0;
  std::string last_fetch_etag_;
};

}  // namespace qp::net
