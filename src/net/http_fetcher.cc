#include "net/http_fetcher.h"

#include <curl/curl.h>

#include <mutex>

namespace qp::net {
namespace {

struct Body {
  CURL* curl = nullptr;
  std::vector<std::uint8_t> bytes;
  std::uint64_t max_length = 0;
  bool too_large = false;
};

std::size_t OnData(char* data, std::size_t size, std::size_t count, void* user) {
  auto* body = static_cast<Body*>(user);
  std::size_t n = size * count;
  long status = 0;
  curl_easy_getinfo(body->curl, CURLINFO_RESPONSE_CODE, &status);
  if (status >= 300) return n;  // an error page: dropped, the status says it all
  if (body->bytes.size() + n > body->max_length) {
    body->too_large = true;
    return 0;  // aborts the transfer
  }
  body->bytes.insert(body->bytes.end(), data, data + n);
  return n;
}

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

struct HttpFetcher::Impl {
  CURL* curl = nullptr;
  ~Impl() {
    if (curl != nullptr) curl_easy_cleanup(curl);
  }
};

HttpFetcher::HttpFetcher(HttpOptions options)
    : impl_(std::make_unique<Impl>()), options_(std::move(options)) {
  GlobalInit();
}

HttpFetcher::~HttpFetcher() = default;

Result<std::vector<std::uint8_t>> HttpFetcher::Fetch(const std::string& url,
                                                     std::uint64_t max_length) {
  if (impl_->curl == nullptr) impl_->curl = curl_easy_init();
  CURL* curl = impl_->curl;
  if (curl == nullptr) return Error(ErrorCode::kInternal, "curl_easy_init failed");
  curl_easy_reset(curl);
  Body body;
  body.curl = curl;
  body.max_length = max_length;
  char error_buffer[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnData);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error_buffer);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, options_.connect_timeout_seconds);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, options_.low_speed_bytes);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, options_.low_speed_seconds);
  if (options_.total_timeout_seconds > 0) {
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, options_.total_timeout_seconds);
  }
  curl_easy_setopt(curl, CURLOPT_USERAGENT, options_.user_agent.c_str());
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!options_.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, options_.ca_file.c_str());
  ++request_count_;
  CURLcode rc = curl_easy_perform(curl);
  if (body.too_large) {
    return Error(ErrorCode::kTooLarge,
                 url + ": more than the allowed " + std::to_string(max_length) + " bytes");
  }
  if (rc != CURLE_OK) {
    return Error(ErrorCode::kIo, url + ": " +
                                     (error_buffer[0] != 0 ? error_buffer : curl_easy_strerror(rc)));
  }
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  if (status == 403 || status == 404) {
    return Error(ErrorCode::kNotFound, url + ": HTTP " + std::to_string(status));
  }
  if (status < 200 || status >= 300) {
    return Error(ErrorCode::kIo, url + ": HTTP " + std::to_string(status));
  }
  return std::move(body.bytes);
}

}  // namespace qp::net
