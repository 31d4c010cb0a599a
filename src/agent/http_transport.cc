#include "agent/http_transport.h"

namespace qp::agent {
namespace {

net::HttpOptions Options(const std::string& ca_file, const std::string& user_agent) {
  net::HttpOptions options;
  options.ca_file = ca_file;
  options.user_agent = user_agent;
  return options;
}

HttpAnswer Answer(net::HttpFetcher::Response r) {
  return HttpAnswer{r.status, std::move(r.body), std::move(r.retry_after), std::move(r.etag)};
}

// A probe's answer is a timestamp at most (or nothing, for 304).
constexpr std::size_t kMaxProbeBytes = 64 << 10;
constexpr long kProbeTimeoutSeconds = 60;

}  // namespace

HttpTransport::HttpTransport(const std::string& ca_file, const std::string& user_agent)
    : http_(Options(ca_file, user_agent)), watch_http_(Options(ca_file, user_agent)) {}

Transport HttpTransport::transport() { return Transport{this, this, this, this, this}; }

Result<std::vector<std::uint8_t>> HttpTransport::Fetch(const std::string& url,
                                                       std::uint64_t max_length) {
  QP_ASSIGN_OR_RETURN(auto bytes, http_.Fetch(url, max_length));
  if (url.ends_with("/timestamp.json")) {
    timestamp_url_ = url;
    timestamp_etag_ = http_.last_fetch_etag();
  }
  return bytes;
}

std::string HttpTransport::FetchedEtag(const std::string& url) {
  return url == timestamp_url_ ? timestamp_etag_ : "";
}

Result<std::uint64_t> HttpTransport::Download(Env* env, const std::string& url,
                                              const std::string& partial_path,
                                              std::uint64_t max_length) {
  return http_.DownloadToFile(env, url, partial_path, max_length);
}

Result<HttpAnswer> HttpTransport::Send(const std::string& url, const std::string& body,
                                       const std::vector<std::string>& headers) {
  QP_ASSIGN_OR_RETURN(auto r, http_.PostJson(url, body, headers));
  return Answer(std::move(r));
}

Result<HttpAnswer> HttpTransport::Watch(const std::string& url,
                                        const std::vector<std::string>& headers,
                                        long timeout_seconds, const std::atomic<bool>* cancel,
                                        std::function<void()> waiting) {
  QP_ASSIGN_OR_RETURN(auto r, watch_http_.Get(url, timeout_seconds, kMaxWatchResponseBytes, cancel,
                                              headers, std::move(waiting)));
  return Answer(std::move(r));
}

Result<HttpAnswer> HttpTransport::Probe(const std::string& url, const std::string& etag) {
  std::vector<std::string> headers;
  if (!etag.empty()) headers.push_back("If-None-Match: " + etag);
  QP_ASSIGN_OR_RETURN(auto r,
                      http_.Get(url, kProbeTimeoutSeconds, kMaxProbeBytes, nullptr, headers));
  return Answer(std::move(r));
}

}  // namespace qp::agent
