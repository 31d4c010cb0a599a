// The agent's transport over HTTP(S) (net::HttpFetcher): one connection for metadata,
// downloads and reports, another for the watch.
#pragma once

#include <string>

#include "agent/transport.h"
#include "net/http_fetcher.h"

namespace qp::agent {

class HttpTransport final : public tuf::Fetcher,
                            public Downloader,
                            public ReportSender,
                            public WatchClient,
                            public MetadataProbe {
 public:
  HttpTransport(const std::string& ca_file, const std::string& user_agent);

  Transport transport();

  Result<std::uint64_t> Download(Env* env, const std::string& url, const std::string& partial_path,
                                 std::uint64_t max_length) override;
  Result<HttpAnswer> Send(const std::string& url, const std::string& body,
                          const std::vector<std::string>& headers) override;
  Result<HttpAnswer> Watch(const std::string& url, const std::vector<std::string>& headers,
                           long timeout_seconds, const std::atomic<bool>* cancel,
                           std::function<void()> waiting) override;
  Result<HttpAnswer> Probe(const std::string& url, const std::string& etag) override;
  std::string FetchedEtag(const std::string& url) override;
  // Metadata, over the same connection; the ETag of each timestamp.json is kept.
  Result<std::vector<std::uint8_t>> Fetch(const std::string& url,
                                          std::uint64_t max_length) override;

 private:
  // A watch answer is small ({"timestamp": N}).
  static constexpr std::size_t kMaxWatchResponseBytes = 4096;

  net::HttpFetcher http_;
  // The ETag of the last timestamp.json fetched, and its URL.
  std::string timestamp_url_, timestamp_etag_;
  net::HttpFetcher watch_http_;
};

}  // namespace qp::agent
